rule indices:
    input:
        dataset=DATASET,
    output:
        manifest=INDICES,
    params:
        seeds=lambda wildcards: SEEDS_OF_PROFILE[wildcards.profile],
        index_names=profile_index_names,
        index_path=lambda wildcards: INDEX,
        minority_classes=minority_rule,
        cap=lambda wildcards: config["datasets"][wildcards.dataset]["train_per_class"],
    log:
        "logs/indices/{dataset}/{profile}.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/make_indices.py"
