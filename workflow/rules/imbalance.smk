rule imbalanced_index:
    input:
        dataset=DATASET,
    output:
        index=INDEX.replace("{index}", "imbalanced"),
    params:
        minority_classes=minority_rule,
        cap=lambda wildcards: config["datasets"][wildcards.dataset]["train_per_class"],
    log:
        "logs/imbalanced_index/{dataset}/{profile}/seed{seed}.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/imbalanced_index.py"


rule sampled_index:
    input:
        dataset=DATASET,
        imbalanced=imbalanced_index,
    output:
        index=INDEX,
    wildcard_constraints:
        index=r"(over|under)(-ratio[0-9.]+)?",
    log:
        "logs/sampled_index/{dataset}/{profile}/seed{seed}/{index}.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../../scripts/sampled_index.py"
