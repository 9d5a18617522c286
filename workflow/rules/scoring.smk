rule score:
    input:
        dataset=DATASET,
        manifest=MANIFEST,
        imbalanced=imbalanced_index,
        training=training_index,
    output:
        scores=SCORES,
    params:
        device=config["device"],
        splits=config["scoring"]["splits"],
        silhouette_per_class=config["scoring"]["silhouette_per_class"],
    log:
        "logs/score/{dataset}/{profile}/seed{seed}/{method}.log",
    threads: 1
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/score.py"
