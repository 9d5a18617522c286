rule train_bundle:
    input:
        dataset=DATASET,
        indices=INDICES,
        phase_one=phase_one_bundles,
    output:
        scores=BUNDLE_SCORES,
        runs=BUNDLE_RUNS,
    params:
        runs=bundle_members,
        run_dir=lambda wildcards: RUN_DIR,
        index_path=lambda wildcards: INDEX,
        device=config["device"],
        stack=config["engine"]["stack"],
        scoring=config["scoring"],
    log:
        "logs/train_bundle/{dataset}/{profile}/{bundle}-{n_runs}runs.log",
    threads: 1
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/train_bundle.py"
