rule prepare_dataset:
    output:
        h5=DATASET,
    params:
        spec=dataset_spec,
    log:
        "logs/prepare_dataset/{dataset}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/prepare_dataset.py"
