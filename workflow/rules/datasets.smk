rule prepare_dataset:
    input:
        sources=dataset_sources,
    output:
        h5=plan.DATASET,
    params:
        name=lambda wildcards: wildcards.dataset,
        settings=lambda wildcards: source_facts.content_settings(dataset_of(wildcards).settings),
    log:
        "logs/prepare_dataset/{dataset}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/prepare_dataset.py"
