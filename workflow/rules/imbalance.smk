rule indices:
    input:
        dataset=plan.DATASET,
    output:
        manifest=plan.INDICES,
    params:
        profile=lambda wildcards: cell_of(wildcards).profile_settings(),
        data_seeds=lambda wildcards: cell_of(wildcards).data_seeds(),
        index_files=lambda wildcards: cell_of(wildcards).index_file_settings(),
        paths=lambda wildcards: cell_of(wildcards).index_paths(),
        context=lambda wildcards: cell_of(wildcards).context,
        minority_classes=lambda wildcards: dataset_of(wildcards).settings["minority_classes"],
        cap=lambda wildcards: dataset_of(wildcards).settings["train_per_class"],
    log:
        "logs/indices/{dataset}/{profile}.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/make_indices.py"
