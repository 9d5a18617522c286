import itertools
import math
import re
import runpy
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from imbalance_study import figures, selection

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

# method -> (sampler, sampling ratio after sampling, two-phase, planted final test ROC AUC at rho 10)
METHODS = {"baseline": ("none", math.nan, False, 0.70), "over": ("over", 1.0, False, 0.90),
           "under": ("under", 1.0, False, 0.80), "twophase_over": ("over", 1.0, True, 0.85),
           "over_r10": ("over", 10.0, False, 0.86), "under_r10": ("under", 10.0, False, 0.78)}
SEEDS = (1, 2, 3)  # values planted at +-0.01 around the mean: mean exact, sd 0.01
ITERATIONS = (10, 100, 1000)  # log-spaced: fig8 uses a log x axis
STEP = [(n_minority, rho) for n_minority in (2, 5) for rho in (10, 100, 1000)]
RAMPS = [("linear", rho) for rho in (10, 100)] + [("exponential", 10)]


def planted(dataset, method, rho, metric, split="test", thresholded=False, group="all", iteration=ITERATIONS[-1]):
    """The mean over seeds that the synthetic table holds for one cell."""
    value = METHODS[method][3] - 0.02 * math.log10(rho) + (0.01 if dataset == "cifar" else 0.0)
    value -= 0.05 * (ITERATIONS.index(iteration) - len(ITERATIONS) + 1)  # earlier checkpoints lower
    value += 0.03 * thresholded + 0.05 * (split == "train") - 0.3 * (group == "minority")
    return value - 0.1 if metric == "accuracy" else value


def identities(datasets=("mnist", "cifar")):
    for dataset in datasets:
        for n_minority, rho in STEP:
            mu = n_minority / 10
            yield {"dataset": dataset, "profile": f"step-mu{mu:g}-rho{rho}", "imbalance": "step", "mu": mu,
                   "n_minority": n_minority, "rho": float(rho)}
        for imbalance, rho in RAMPS:
            yield {"dataset": dataset, "profile": f"{imbalance}-rho{rho}", "imbalance": imbalance, "mu": math.nan,
                   "n_minority": math.nan, "rho": float(rho)}


def score_table(datasets=("mnist", "cifar"), seeds=SEEDS, selected=True, offset=0.0):
    rows = []
    for identity in identities(datasets):
        for method, (sampler, ratio, two_phase, _) in METHODS.items():
            for seed, iteration, split, metric, thresholded, group in itertools.product(
                    seeds, ITERATIONS, ("train", "test"), ("roc_auc", "accuracy"), (False, True),
                    ("all", "minority")):
                value = planted(identity["dataset"], method, identity["rho"], metric, split, thresholded, group,
                                iteration) + 0.01 * (seed - 2) + offset
                rows.append({**identity, "seed": seed, "method": method, "variant": method, "sampler": sampler,
                             "sampling_ratio": ratio, "two_phase": two_phase, "base_lr": 0.01,
                             "selected": selected, "select_on": "", "select_metric": "",
                             "iteration": iteration, "split": split,
                             "thresholded": thresholded, "metric": metric, "class": -1 if group == "all" else 0,
                             "group": group, "value": value})
            # Learning dynamics: group means of recall (train above test) and silhouettes.
            for seed, iteration, split, group in itertools.product(seeds, ITERATIONS, ("train", "test"),
                                                                   ("majority", "minority")):
                common = {**identity, "seed": seed, "method": method, "variant": method, "sampler": sampler,
                          "sampling_ratio": ratio, "two_phase": two_phase, "base_lr": 0.01, "selected": selected,
                          "select_on": "", "select_metric": "", "iteration": iteration, "thresholded": False,
                          "class": -1, "group": group}
                recall = planted(identity["dataset"], method, identity["rho"], "recall", split, False, group,
                                 iteration) + 0.01 * (seed - 2) + offset
                rows.append({**common, "split": split, "metric": "recall", "value": recall})
                if split == "test":
                    rows.append({**common, "split": "test", "metric": "silhouette", "value": recall - 0.5})
    return pd.DataFrame(rows)[list(figures.TABLE_COLUMNS)]


@pytest.fixture(scope="module")
def table():
    return score_table()


def assert_pdf(path):
    content = Path(path).read_bytes()
    assert content[:4] == b"%PDF" and len(content) > 5000


def test_contract_columns():
    assert figures.TABLE_COLUMNS == (
        "dataset", "profile", "imbalance", "mu", "n_minority", "rho", "seed", "method", "variant", "sampler",
        "sampling_ratio", "two_phase", "base_lr", "selected", "select_on", "select_metric",
        "iteration", "split", "thresholded", "metric", "class", "group", "value")


def test_a_score_file_missing_columns_is_named(tmp_path, table):
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    table.to_csv(good, index=False)
    table.drop(columns=["rho", "selected"]).to_csv(bad, index=False)
    assert len(figures.load_scores([good])) == len(table)
    with pytest.raises(figures.ScoreTableError, match=r"bad\.csv.*\['rho', 'selected'\]"):
        figures.load_scores([good, bad])


def test_booleans_are_read_from_any_spelling(tmp_path, table):
    spelled = table.copy()
    spelled["thresholded"] = spelled["thresholded"].map({True: "True", False: "False"})
    spelled["selected"] = "true"
    spelled["two_phase"] = spelled["two_phase"].map({True: "1", False: "0"})
    spelled.to_csv(tmp_path / "spelled.csv", index=False)
    loaded = figures.load_scores(tmp_path / "spelled.csv")
    for column in figures.BOOLEAN_COLUMNS:
        assert loaded[column].dtype == bool
        assert (loaded[column] == table[column]).all()
    pd.testing.assert_frame_equal(figures.table4_frame(spelled), figures.table4_frame(table))
    spelled.loc[0, "selected"] = "maybe"
    with pytest.raises(figures.ScoreTableError, match="selected.*maybe"):
        figures.normalize_scores(spelled)


def test_final_scores_take_each_runs_last_checkpoint(table):
    final = figures.final_scores(table, "roc_auc")
    runs = table.drop_duplicates(list(figures.RUN_COLUMNS))
    assert set(final["iteration"]) == {1000} and len(final) == len(runs)
    assert set(final["split"]) == {"test"} and not final["thresholded"].any() and set(final["group"]) == {"all"}
    assert set(figures.final_scores(table, "roc_auc", iteration=100)["iteration"]) == {100}
    with pytest.raises(figures.ScoreTableError, match="no scores at iteration 70"):
        figures.final_scores(table, "roc_auc", iteration=70)


def test_last_checkpoint_is_per_run():
    short = score_table(datasets=("mnist",))
    short = short[~((short["method"] == "over") & (short["iteration"] == 1000))]  # one method stopped earlier
    final = figures.final_scores(short, "roc_auc")
    assert set(final.loc[final["method"] == "over", "iteration"]) == {100}
    assert set(final.loc[final["method"] != "over", "iteration"]) == {1000}


@pytest.mark.parametrize("name", sorted(figures.FIGURES))
def test_every_figure_writes_a_pdf(tmp_path, table, name):
    figures.FIGURES[name](table, tmp_path / f"{name}.pdf")
    assert_pdf(tmp_path / f"{name}.pdf")


@pytest.mark.parametrize("name, settings", [
    ("fig3", {"metric": "accuracy", "methods": ["under", "baseline"], "iteration": 100, "datasets": ["mnist"]}),
    ("fig5", {"imbalance": "exponential"}),
    ("fig7", {"rho": 10, "datasets": "cifar"}),
    ("fig8", {"profile": "step-mu0.5-rho10", "methods": ["baseline", "over", "under", "over_r10"]}),
    ("table4", {"metric": "roc_auc", "methods": ["baseline", "over"], "iteration": 10}),
])
def test_figures_take_their_settings(tmp_path, table, name, settings):
    figures.FIGURES[name](table, tmp_path / f"{name}.pdf", **settings)
    assert_pdf(tmp_path / f"{name}.pdf")


def test_table4_holds_the_planted_means(tmp_path, table):
    figures.write_table4(table, tmp_path / "table4.csv", tmp_path / "table4.pdf")
    assert_pdf(tmp_path / "table4.pdf")
    written = pd.read_csv(tmp_path / "table4.csv")
    assert set(written["metric"]) == {"roc_auc", "accuracy"}
    assert len(written) == 2 * 2 * (len(STEP) + len(RAMPS))  # datasets x metrics x settings
    assert [c for c in written.columns if c.endswith("_mean")] == [f"{m}_mean" for m in (
        "baseline", "over", "under", "twophase_over", "over_r10", "under_r10")]
    for _, row in written.iterrows():
        for method in METHODS:
            assert row[f"{method}_mean"] == pytest.approx(planted(row["dataset"], method, row["rho"], row["metric"]))
            assert row[f"{method}_sd"] == pytest.approx(0.01)
            assert row[f"{method}_n"] == len(SEEDS)
    step = written[(written["imbalance"] == "step") & (written["dataset"] == "mnist")]
    assert step["setting"].iloc[0] == "μ = 0.2, ρ = 10"
    assert written.loc[written["imbalance"] == "linear", "mu"].isna().all()


def test_table4_default_csv_sits_beside_the_pdf(tmp_path, table):
    figures.FIGURES["table4"](table, tmp_path / "table4.pdf", metric="accuracy")
    written = pd.read_csv(tmp_path / "table4.csv", keep_default_na=False)
    assert list(written["metric"].unique()) == ["accuracy", "roc_auc"]  # the named metric's block first
    assert (written["select_on"] == "").all()  # no learning-rate search in this study
    assert set(figures.table4_frame(table, metric=["accuracy"])["metric"]) == {"accuracy"}


def test_unselected_runs_are_left_out(tmp_path, table):
    absurd = score_table(seeds=(99,), selected=False, offset=100.0)
    frame = figures.write_table4(pd.concat([table, absurd]), tmp_path / "t.csv", tmp_path / "t.pdf")
    assert frame["baseline_mean"].max() < 1 and (frame["baseline_n"] == len(SEEDS)).all()
    pd.testing.assert_frame_equal(frame, figures.table4_frame(table))
    assert (figures.final_scores(pd.concat([table, absurd]), "roc_auc")["seed"] != 99).all()


@pytest.mark.parametrize("name", sorted(figures.FIGURES))
def test_no_test_scores_is_an_error_naming_the_figure(tmp_path, table, name):
    with pytest.raises(figures.ScoreTableError, match=rf"^{name}: nothing to draw.*split"):
        figures.FIGURES[name](table[table["split"] != "test"], tmp_path / "x.pdf")
    assert not (tmp_path / "x.pdf").exists()


@pytest.mark.parametrize("name, rows, settings, message", [
    ("fig3", lambda t: t["imbalance"] != "step", {}, "fig3: .*step imbalance.*linear"),
    ("fig4", lambda t: ~t["selected"], {}, "fig4: .*selected = True"),
    ("fig5", lambda t: t["imbalance"] != "linear", {}, "fig5: .*linear imbalance.*exponential"),
    ("fig6", lambda t: t["metric"] != "accuracy", {}, "fig6: .*metric accuracy.*roc_auc"),
    ("fig7", lambda t: t["sampler"] == "none", {}, "fig7: .*sampler over or under at rho = 1000"),
    ("fig7", lambda t: t["rho"] > 0, {"rho": 5}, r"fig7: .*rho = 5\b.*'10', '100', '1000'"),
    ("fig8", lambda t: t["rho"] > 0, {"profile": "step-mu0.9-rho7"}, "fig8: .*profile step-mu0.9-rho7"),
    ("fig8", lambda t: t["split"] == "test", {}, "fig8: .*split train"),
    ("table4", lambda t: t["rho"] > 0, {"datasets": ["imagenet"]}, r"table4: .*dataset in \['imagenet'\]"),
])
def test_missing_rows_are_named(tmp_path, table, name, rows, settings, message):
    with pytest.raises(figures.ScoreTableError, match=message):
        figures.FIGURES[name](table[rows(table)], tmp_path / "x.pdf", **settings)


def test_fig8_defaults_to_the_first_step_profile_with_the_largest_rho(table):
    assert figures.default_fig8_profile(table) == "step-mu0.2-rho1000"


def test_summaries_are_means_and_sds_over_repeats(table):
    final = figures.final_scores(table, "roc_auc")
    summary = figures.summarize(final, ["dataset", "profile", "method"])
    assert (summary["n"] == len(SEEDS)).all() and np.allclose(summary["sd"], 0.01)
    one = figures.summarize(final[final["seed"] == 1], ["dataset", "profile", "method"])
    assert (one["sd"] == 0).all()


@pytest.mark.parametrize("name, outputs", [("fig7", {"pdf": "fig7.pdf"}),
                                           ("table4", {"pdf": "table4.pdf", "csv": "t4.csv"})])
def test_the_generic_script_draws_a_figure(tmp_path, monkeypatch, table, name, outputs):
    table.to_csv(tmp_path / "scores.csv", index=False)
    monkeypatch.syspath_prepend(str(SCRIPTS))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    output = {key: str(tmp_path / value) for key, value in outputs.items()}
    fake = SimpleNamespace(input=SimpleNamespace(scores=[str(tmp_path / "scores.csv")]),
                           output=SimpleNamespace(items=lambda: output.items(), **output),
                           params=SimpleNamespace(figure=name, settings={"datasets": ["mnist"]}),
                           log=[str(tmp_path / "figure.log")], config={"study": {"seeds": [1]}})
    runpy.run_path(str(SCRIPTS / "plot_figure.py"), init_globals={"snakemake": fake})
    assert_pdf(output["pdf"])
    if "csv" in output:
        assert set(pd.read_csv(output["csv"])["dataset"]) == {"mnist"}
    assert "drew" in (tmp_path / "figure.log").read_text()
    fake.params.settings = {"profile": "step-mu0.2-rho10"}
    with pytest.raises(figures.FigureSettingsError, match=rf"{name}: unknown setting\(s\) \['profile'\]"):
        runpy.run_path(str(SCRIPTS / "plot_figure.py"), init_globals={"snakemake": fake})


def searched_table():
    """mnist with ``over`` run as a learning-rate search over two rates, judged on a validation split.

    lr 0.01 scores 0.05 higher than lr 0.1 everywhere; validation scores equal test scores, so the
    search keeps seed 3 at lr 0.01 (highest validation ROC AUC) for every profile.
    """
    table = score_table(datasets=("mnist",))
    plain = table[table["method"] != "over"]
    over = table[(table["method"] == "over") & (table["split"] == "test")]
    over = pd.concat([over, over.assign(split="validation")], ignore_index=True)
    runs = [over.assign(variant=f"over-lr{lr:g}", base_lr=lr, value=over["value"] + gain)
            for lr, gain in ((0.1, 0.0), (0.01, 0.05))]
    searched = pd.concat(runs, ignore_index=True).assign(selected=False, select_on="validation",
                                                         select_metric="roc_auc")
    return pd.concat([plain, searched], ignore_index=True)


def test_the_generic_script_decides_learning_rate_searches(tmp_path, monkeypatch):
    searched_table().to_csv(tmp_path / "scores.csv", index=False)
    monkeypatch.syspath_prepend(str(SCRIPTS))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    output = {"pdf": str(tmp_path / "table4.pdf"), "csv": str(tmp_path / "table4.csv")}
    fake = SimpleNamespace(input=SimpleNamespace(scores=[str(tmp_path / "scores.csv")]),
                           output=SimpleNamespace(items=lambda: output.items(), **output),
                           params=SimpleNamespace(figure="table4", settings={}), log=[str(tmp_path / "t4.log")],
                           config={})
    runpy.run_path(str(SCRIPTS / "plot_figure.py"), init_globals={"snakemake": fake})
    assert_pdf(output["pdf"])
    written = pd.read_csv(output["csv"], keep_default_na=False)
    assert (written["select_on"] == "validation").all()
    for _, row in written.iterrows():
        best = planted("mnist", "over", row["rho"], row["metric"]) + 0.05 + 0.01  # lr 0.01, seed 3
        assert row["over_mean"] == pytest.approx(best) and row["over_n"] == 1 and row["over_sd"] == 0
        assert row["baseline_mean"] == pytest.approx(planted("mnist", "baseline", row["rho"], row["metric"]))
        assert row["baseline_n"] == len(SEEDS)


def test_titles_name_the_split_a_search_selected_on():
    chosen = selection.mark_selected(searched_table())
    rows = figures.final_scores(chosen, "roc_auc")
    assert figures._selection_text(rows) == "; searched runs' learning rate selected on the validation split"
    over = rows[rows["method"] == "over"]
    assert figures._selection_text(over) == "; learning rate selected on the validation split"
    assert figures._selection_text(over.assign(select_on="test")).endswith("on the test split (optimistic)")
    assert figures._selection_text(rows[rows["method"] == "baseline"]) == ""
    assert set(over["variant"]) == {"over-lr0.01"} and set(over["seed"]) == {3}


def test_dynamics_draws_two_pages_of_group_curves(tmp_path, table):
    path = tmp_path / "dynamics.pdf"
    figures.FIGURES["dynamics"](table, path, methods=["baseline", "over"])
    content = path.read_bytes()
    assert content.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page(?!s)", content)) == 2


def test_dynamics_without_group_means_names_what_is_missing(tmp_path, table):
    with pytest.raises(figures.ScoreTableError, match="^dynamics: nothing to draw.*metric recall"):
        figures.FIGURES["dynamics"](table[table["metric"] != "recall"], tmp_path / "x.pdf")


def test_generalisation_gap_per_group_on_a_hand_made_table():
    """Two runs, two groups, two checkpoints: the gap is train minus test per run, group and
    checkpoint; a checkpoint scored on one split only gives no gap."""
    common = {"dataset": "digits", "profile": "step-mu0.2-rho100", "metric": "recall", "class": -1}
    values = {  # (method, seed, group, iteration): (train, test)
        ("baseline", 1, "minority", 100): (0.0, 0.0), ("baseline", 1, "minority", 1000): (1.0, 0.2),
        ("baseline", 1, "majority", 100): (0.9, 0.85), ("baseline", 1, "majority", 1000): (1.0, 0.98),
        ("over", 1, "minority", 1000): (1.0, 0.6),
    }
    rows = [{**common, "method": method, "variant": method, "seed": seed, "group": group, "iteration": iteration,
             "split": split, "value": value}
            for (method, seed, group, iteration), pair in values.items() for split, value in zip(("train", "test"), pair)]
    rows.append({**common, "method": "over", "variant": "over", "seed": 1, "group": "majority", "iteration": 1000,
                 "split": "train", "value": 1.0})  # no test row: no gap
    gap = figures.generalisation_gap(pd.DataFrame(rows))
    got = {(r.method, r.group, r.iteration): round(r.value, 10) for r in gap.itertuples()}
    assert got == {("baseline", "minority", 100): 0.0, ("baseline", "minority", 1000): 0.8,
                   ("baseline", "majority", 100): 0.05, ("baseline", "majority", 1000): 0.02,
                   ("over", "minority", 1000): 0.4}
