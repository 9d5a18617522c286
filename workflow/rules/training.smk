rule train_bundle:
    input:
        dataset=plan.DATASET,
        indices=plan.INDICES,
        phase_one=phase_one_bundles,
    output:
        scores=plan.BUNDLE_SCORES,
        runs=plan.BUNDLE_RUNS,
    params:
        members=lambda wildcards: bundle_of(wildcards).members(),
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
