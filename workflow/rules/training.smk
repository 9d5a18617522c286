rule train:
    input:
        dataset=DATASET,
        index=training_index,
        phase_one=phase_one_manifest,
    output:
        manifest=MANIFEST,
    params:
        model=run_model,
        model_options=lambda wildcards: config["datasets"][wildcards.dataset].get("model_options", {}),
        protocol=run_protocol,
        device=config["device"],
    log:
        "logs/train/{dataset}/{profile}/seed{seed}/{method}.log",
    threads: 1
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/train.py"
