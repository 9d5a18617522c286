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
        conv=config["engine"]["conv"],
        graphs=config["engine"]["graphs"],
        scoring=config["scoring"],
    log:
        "logs/train_bundle/{dataset}/{profile}/{bundle}-{n_runs}runs.log",
    threads: 1
    # 1 when the job trains on CUDA, 0 on the CPU (common.smk): with profiles/default's gpu=1, jobs
    # on the GPU run one at a time; profiles/slurm turns its own gpu=1 into a GPU request.
    resources:
        gpu=training_gpus(),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/train_bundle.py"
