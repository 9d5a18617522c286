import inspect
import io
import itertools
import math
import re
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from imbalance_study import figures, selection
from imbalance_study.figures.style import _selection_text

from .conftest import REPO

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
    value += 0.05 * (ITERATIONS.index(iteration) - len(ITERATIONS) + 1)  # earlier checkpoints lower
    value += 0.03 * thresholded + 0.05 * (split == "train") - 0.3 * (group == "minority")
    value += 0.1 * (split == "train" and group == "minority")  # memorised: a larger gap for the minority
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
                             "selected": selected, "select_on": "", "select_metric": "", "diverged_at": math.nan,
                             "iteration": iteration, "split": split,
                             "thresholded": thresholded, "metric": metric, "class": -1 if group == "all" else 0,
                             "group": group, "value": value})
            # Learning dynamics: group means of recall (train above test) and silhouettes.
            for seed, iteration, split, group in itertools.product(seeds, ITERATIONS, ("train", "test"),
                                                                   ("majority", "minority")):
                common = {**identity, "seed": seed, "method": method, "variant": method, "sampler": sampler,
                          "sampling_ratio": ratio, "two_phase": two_phase, "base_lr": 0.01, "selected": selected,
                          "select_on": "", "select_metric": "", "diverged_at": math.nan, "iteration": iteration, "thresholded": False,
                          "class": -1, "group": group}
                recall = planted(identity["dataset"], method, identity["rho"], "recall", split, False, group,
                                 iteration) + 0.01 * (seed - 2) + offset
                rows.append({**common, "split": split, "metric": "recall", "value": recall})
                if split == "test":
                    rows.append({**common, "split": "test", "metric": "silhouette", "value": recall - 0.5})
    return pd.DataFrame(rows)[list(figures.TABLE_COLUMNS)]


# The settings the workflow always passes (their defaults live in the config schema; fig8's and
# dynamics' profile is chosen by imbalance_study.catalog when the config names none).
PROFILE = "step-mu0.2-rho1000"
REQUIRED = {"fig3": {"metric": "roc_auc"}, "fig4": {"metric": "roc_auc"},
            "fig5": {"metric": "roc_auc", "imbalance": "linear"}, "fig6": {"metric": "accuracy"},
            "fig7": {"rho": 1000, "metric": "roc_auc", "layout": "paper"}, "fig8": {"metric": "accuracy", "profile": PROFILE},
            "table4": {"layout": "paper", "run_columns": 3}, "dynamics": {"profile": PROFILE}, "published": {},
            "comparison": {"metric": "roc_auc", "reference": "baseline", "confidence": 0.95}}
SUMMARY = ["mean", "sd", "n"]
METHOD_NAMES = ["baseline", "over", "under", "twophase_over", "over_r10", "under_r10"]  # METHOD_ORDER, then a-z


@pytest.fixture(scope="module")
def table():
    return score_table()


def assert_pdf(path):
    content = Path(path).read_bytes()
    assert content[:4] == b"%PDF" and len(content) > 5000


def draw(table, directory, name, **settings):
    """Draw a figure with the workflow's settings (``settings`` on top); its CSV, read back."""
    pdf, csv = Path(directory) / f"{name}.pdf", Path(directory) / f"{name}.csv"
    figures.FIGURES[name](table, pdf, csv, **{**REQUIRED[name], **settings})
    assert_pdf(pdf)
    assert not list(Path(directory).glob(".tmp-*"))  # both written atomically
    return pd.read_csv(csv, keep_default_na=False, na_values=[""])


def assert_planted(frame, metric, **cell):
    """Every row's mean is the planted one for its cell, over all the seeds: sd 0.01, n = seeds."""
    assert len(frame)
    for _, row in frame.iterrows():
        where = {key: row[key] for key in ("split", "thresholded", "group", "iteration") if key in row.index}
        rho = row["rho"]
        expected = planted(row["dataset"], row["method"], rho, metric, **{**where, **cell})
        assert row["mean"] == pytest.approx(expected), row
        assert row["sd"] == pytest.approx(0.01) and row["n"] == len(SEEDS), row


def test_contract_columns():
    assert figures.TABLE_COLUMNS == (
        "dataset", "profile", "imbalance", "mu", "n_minority", "rho", "seed", "method", "variant", "sampler",
        "sampling_ratio", "two_phase", "base_lr", "selected", "select_on", "select_metric", "diverged_at",
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
    written = draw(table, tmp_path, name)
    assert len(written) > 0
    if name != "table4":
        assert list(written.columns[-3:]) == SUMMARY and (written["n"] == len(SEEDS)).all()
        assert np.allclose(written.loc[written["sd"] > 0.001, "sd"], 0.01)  # the gap's runs agree: sd ~0


@pytest.mark.parametrize("name, settings", [
    ("fig3", {"metric": "accuracy", "methods": ["under", "baseline"], "iteration": 100, "datasets": ["mnist"]}),
    ("fig5", {"imbalance": "exponential"}),
    ("fig7", {"rho": 10, "datasets": "cifar"}),
    ("fig8", {"profile": "step-mu0.5-rho10", "methods": ["baseline", "over", "under", "over_r10"]}),
    ("table4", {"metric": "roc_auc", "methods": ["baseline", "over"], "iteration": 10}),
])
def test_figures_take_their_settings(tmp_path, table, name, settings):
    written = draw(table, tmp_path, name, **settings)
    datasets = settings.get("datasets", ["mnist", "cifar"])
    assert set(written["dataset"]) == set([datasets] if isinstance(datasets, str) else datasets)
    if "methods" in settings and name != "table4":
        assert list(dict.fromkeys(written["method"])) == [m for m in METHOD_NAMES if m in settings["methods"]]
    if name == "table4":
        assert [c for c in written.columns if c.endswith("_mean")] == ["baseline_mean", "over_mean"]
        for _, row in written.iterrows():
            assert row["over_mean"] == pytest.approx(planted(row["dataset"], "over", row["rho"], row["metric"],
                                                             iteration=10))


def test_line_figures_draw_the_planted_means(tmp_path, table):
    """fig3 to fig6: one row per drawn point, the planted mean of every method at every setting."""
    fig3 = draw(table, tmp_path, "fig3")
    assert list(fig3.columns) == ["dataset", "imbalance", "n_minority", "rho", "method", "metric"] + SUMMARY
    assert len(fig3) == 2 * len(STEP) * len(METHODS)  # datasets x (n_minority, rho) x methods
    assert set(zip(fig3["n_minority"], fig3["rho"])) == set(STEP)
    assert set(fig3["metric"]) == {"roc_auc"} and set(fig3["imbalance"]) == {"step"}
    assert list(dict.fromkeys(fig3["method"])) == METHOD_NAMES  # METHOD_ORDER, then the others alphabetically
    assert_planted(fig3, "roc_auc")

    fig4 = draw(table, tmp_path, "fig4", metric="accuracy")
    assert list(fig4.columns) == ["dataset", "imbalance", "rho", "n_minority", "method", "metric"] + SUMMARY
    assert len(fig4) == len(fig3) and set(fig4["metric"]) == {"accuracy"}
    assert_planted(fig4, "accuracy")

    fig5 = draw(table, tmp_path, "fig5")
    assert list(fig5.columns) == ["dataset", "imbalance", "rho", "method", "metric"] + SUMMARY
    linear = [rho for kind, rho in RAMPS if kind == "linear"]
    assert len(fig5) == 2 * len(linear) * len(METHODS) and set(fig5["imbalance"]) == {"linear"}
    assert set(fig5["rho"]) == set(linear)
    assert_planted(fig5, "roc_auc")
    exponential = draw(table, tmp_path, "fig5", imbalance="exponential", iteration=10)
    assert set(exponential["imbalance"]) == {"exponential"} and set(exponential["rho"]) == {10}
    assert len(exponential) == 2 * len(METHODS)
    assert_planted(exponential, "roc_auc", iteration=10)


def test_fig6_draws_each_method_without_and_with_thresholding(tmp_path, table):
    fig6 = draw(table, tmp_path, "fig6")
    assert list(fig6.columns) == ["dataset", "imbalance", "n_minority", "rho", "method", "thresholded",
                                  "metric"] + SUMMARY
    assert fig6["thresholded"].dtype == bool and set(fig6["metric"]) == {"accuracy"}
    assert len(fig6) == 2 * len(STEP) * len(METHODS) * 2
    for _, rows in fig6.groupby(["dataset", "n_minority", "rho", "method"]):
        assert sorted(rows["thresholded"]) == [False, True]
    assert_planted(fig6, "accuracy")  # thresholding planted 0.03 higher
    restricted = draw(table, tmp_path, "fig6", methods=["baseline"], datasets=["mnist"])
    assert set(restricted["method"]) == {"baseline"} and len(restricted) == len(STEP) * 2


def test_fig7_draws_the_sampling_lines_and_the_baseline_reference(tmp_path, table):
    fig7 = draw(table, tmp_path, "fig7")
    assert list(fig7.columns) == ["dataset", "n_minority", "rho", "line", "sampler",
                                  "imbalance_ratio_after_sampling", "metric"] + SUMMARY
    assert set(fig7["rho"]) == {1000} and set(fig7["metric"]) == {"roc_auc"}
    panels = {(n_minority, rho) for n_minority, rho in STEP if rho == 1000}
    # per panel: the baseline, and each sampler at ratios 1 and 10 (two-phase runs left out)
    assert len(fig7) == 2 * len(panels) * 5
    which = {("baseline", "none", 1000): "baseline", ("oversampling", "over", 1): "over",
             ("oversampling", "over", 10): "over_r10", ("undersampling", "under", 1): "under",
             ("undersampling", "under", 10): "under_r10"}
    for (dataset, n_minority), rows in fig7.groupby(["dataset", "n_minority"]):
        assert rows["line"].iloc[0] == "baseline"  # the reference first, marked as such
        points = {(r.line, r.sampler, r.imbalance_ratio_after_sampling): r for r in rows.itertuples()}
        assert set(points) == set(which)
        for key, method in which.items():
            assert points[key].mean == pytest.approx(planted(dataset, method, 1000, "roc_auc"))
            assert points[key].sd == pytest.approx(0.01) and points[key].n == len(SEEDS)
    at_10 = draw(table, tmp_path, "fig7", rho=10, datasets=["cifar"], methods=["baseline", "over"])
    assert set(at_10["line"]) == {"baseline", "oversampling"} and set(at_10["dataset"]) == {"cifar"}
    baseline = at_10[at_10["line"] == "baseline"]
    assert (baseline["imbalance_ratio_after_sampling"] == 10).all() and len(baseline) == 2
    assert baseline["mean"].to_list() == pytest.approx([planted("cifar", "baseline", 10, "roc_auc")] * 2)


def test_fig8_draws_train_and_test_at_every_checkpoint(tmp_path, table):
    fig8 = draw(table, tmp_path, "fig8")
    assert list(fig8.columns) == ["dataset", "profile", "method", "split", "iteration", "metric"] + SUMMARY
    assert set(fig8["profile"]) == {PROFILE} and set(fig8["metric"]) == {"accuracy"}
    assert list(dict.fromkeys(fig8["method"])) == METHOD_NAMES  # every method of the table by default
    for (dataset, method), rows in fig8.groupby(["dataset", "method"]):
        assert list(zip(rows["split"], rows["iteration"])) == [
            (split, iteration) for split in ("train", "test") for iteration in ITERATIONS]
    fig8 = fig8.assign(rho=1000.0)
    assert_planted(fig8, "accuracy")  # train planted above test, earlier checkpoints lower
    other = draw(table, tmp_path, "fig8", profile="step-mu0.5-rho10", metric="roc_auc", methods=["under"])
    assert set(other["profile"]) == {"step-mu0.5-rho10"} and set(other["method"]) == {"under"}
    assert len(other) == 2 * 2 * len(ITERATIONS)
    assert_planted(other.assign(rho=10.0), "roc_auc")


def test_table4_holds_the_planted_means(tmp_path, table):
    figures.write_table4(table, tmp_path / "table4.csv", tmp_path / "table4.pdf", layout="paper", run_columns=3)
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


def test_table4_under_the_figures_signature_writes_its_frame(tmp_path, table):
    figures.FIGURES["table4"](table, tmp_path / "table4.pdf", tmp_path / "t4.csv", **REQUIRED["table4"],
                              metric="accuracy")
    assert_pdf(tmp_path / "table4.pdf")
    written = pd.read_csv(tmp_path / "t4.csv", keep_default_na=False)
    assert list(written["metric"].unique()) == ["accuracy", "roc_auc"]  # the named metric's block first
    assert (written["select_on"] == "").all()  # no learning-rate search in this study
    assert set(figures.table4_frame(table, metric=["accuracy"])["metric"]) == {"accuracy"}
    frame = figures.table4_frame(table, metric="accuracy")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t4.csv"), pd.read_csv(io.StringIO(frame.to_csv(index=False))))


def test_unselected_runs_are_left_out(tmp_path, table):
    absurd = score_table(seeds=(99,), selected=False, offset=100.0)
    frame = figures.write_table4(pd.concat([table, absurd]), tmp_path / "t.csv", tmp_path / "t.pdf", layout="paper",
                                 run_columns=3)
    assert frame["baseline_mean"].max() < 1 and (frame["baseline_n"] == len(SEEDS)).all()
    pd.testing.assert_frame_equal(frame, figures.table4_frame(table))
    assert (figures.final_scores(pd.concat([table, absurd]), "roc_auc")["seed"] != 99).all()
    few = {"methods": ["baseline", "over"], "datasets": ["mnist"]}
    for name in ("fig3", "fig8", "dynamics"):
        pd.testing.assert_frame_equal(draw(pd.concat([table, absurd]), tmp_path, name, **few),
                                      draw(table, tmp_path, name, **few))


@pytest.mark.parametrize("name", sorted(figures.FIGURES))
def test_no_test_scores_is_an_error_naming_the_figure(tmp_path, table, name):
    with pytest.raises(figures.ScoreTableError, match=rf"^{name}: nothing to draw.*split"):
        figures.FIGURES[name](table[table["split"] != "test"], tmp_path / "x.pdf", tmp_path / "x.csv",
                              **REQUIRED[name])
    assert not (tmp_path / "x.pdf").exists() and not (tmp_path / "x.csv").exists()


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
    ("dynamics", lambda t: t["rho"] > 0, {"profile": "step-mu0.9-rho7"}, "dynamics: .*profile step-mu0.9-rho7"),
])
def test_missing_rows_are_named(tmp_path, table, name, rows, settings, message):
    with pytest.raises(figures.ScoreTableError, match=message):
        figures.FIGURES[name](table[rows(table)], tmp_path / "x.pdf", tmp_path / "x.csv",
                              **{**REQUIRED[name], **settings})


@pytest.mark.parametrize("name", sorted(figures.FIGURES))
def test_settings_with_a_schema_default_are_required(tmp_path, table, name):
    """No figure picks its own metric, ρ, kind of imbalance or profile: the caller passes them."""
    plot = inspect.unwrap(figures.FIGURES[name])
    parameters = [p for p in inspect.signature(plot).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert list(inspect.signature(plot).parameters)[:3] == ["table", "pdf_path", "csv_path"]
    assert sorted(p.name for p in parameters if p.default is inspect.Parameter.empty) == sorted(REQUIRED[name])
    assert all(p.default is None for p in parameters if p.default is not inspect.Parameter.empty)
    for setting in REQUIRED[name]:
        given = {key: value for key, value in REQUIRED[name].items() if key != setting}
        with pytest.raises(figures.FigureSettingsError, match=rf"^{name}: missing setting\(s\) \['{setting}'\]"):
            figures.FIGURES[name](table, tmp_path / "x.pdf", tmp_path / "x.csv", **given)
    with pytest.raises(figures.FigureSettingsError, match=rf"^{name}: unknown setting\(s\) \['colour'\]"):
        figures.FIGURES[name](table, tmp_path / "x.pdf", tmp_path / "x.csv", colour="red", **REQUIRED[name])
    assert not (tmp_path / "x.pdf").exists()


def test_the_schema_gives_the_required_settings_their_defaults():
    """Each figure takes exactly the settings of its config key; those with a schema default (and fig8's
    and dynamics' profile, chosen by the workflow) are required."""
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())

    def resolve(node):
        while "$ref" in node:
            node = {**schema["$defs"][node["$ref"].split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
        return node

    for name, node in schema["properties"]["figures"]["properties"].items():
        properties = {key: resolve(value) for key, value in resolve(node)["properties"].items()}
        plot = inspect.unwrap(figures.FIGURES[name])
        taken = [p.name for p in inspect.signature(plot).parameters.values()
                 if p.kind is inspect.Parameter.KEYWORD_ONLY]
        assert sorted(taken) == sorted(properties), name
        defaults = {key for key, value in properties.items() if "default" in value} | ({"profile"} & set(properties))
        assert defaults == set(REQUIRED[name]), name
        assert {key: properties[key]["default"] for key in defaults - {"profile"}} == \
            {key: value for key, value in REQUIRED[name].items() if key != "profile"}, name


def test_importing_the_figures_loads_no_plotting_library():
    code = ("import sys; from imbalance_study import figures; assert sorted(figures.FIGURES) == "
            f"{sorted(figures.FIGURES)!r}; assert 'fig3' in figures.FIGURES; "
            "heavy = [m for m in ('pandas', 'matplotlib', 'seaborn') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_pdf_metadata_names_the_provenance(tmp_path, table, monkeypatch):
    metadata = figures.provenance_metadata({"fig3": {"metric": "roc_auc"}}, {"python": "3.11.9", "pandas": "2.2.3"})
    assert metadata == {"Subject": 'settings {"fig3": {"metric": "roc_auc"}}; python 3.11.9, pandas 2.2.3',
                        "Creator": "imbalance-study"}
    for key, value in metadata.items():
        monkeypatch.setitem(figures.PDF_METADATA, key, value)
    for name in ("fig3", "dynamics", "table4"):
        draw(table, tmp_path, name, methods=["baseline"], datasets=["mnist"])
        assert b'"roc_auc"}}; python 3.11.9, pandas 2.2.3' in (tmp_path / f"{name}.pdf").read_bytes()


def test_summaries_are_means_and_sds_over_repeats(table):
    final = figures.final_scores(table, "roc_auc")
    summary = figures.summarize(final, ["dataset", "profile", "method"])
    assert (summary["n"] == len(SEEDS)).all() and np.allclose(summary["sd"], 0.01)
    one = figures.summarize(final[final["seed"] == 1], ["dataset", "profile", "method"])
    assert (one["sd"] == 0).all()


def fake_rule(tmp_path, table, name, settings, runs=None):
    """What the figure rule hands scripts/plot_figure.py: its outputs (pdf, csv), the figure's name,
    the settings resolved from the config, the runs the figure draws."""
    table.to_csv(tmp_path / "scores.csv", index=False)
    runs = runs if runs is not None else table[["dataset", "profile", "seed", "variant"]].drop_duplicates()
    return SimpleNamespace(input=SimpleNamespace(scores=[str(tmp_path / "scores.csv")]),
                           output=SimpleNamespace(pdf=str(tmp_path / f"{name}.pdf"), csv=str(tmp_path / f"{name}.csv")),
                           params=SimpleNamespace(figure=name, settings=settings, runs=runs.values.tolist(),
                                                  early_stopping={"enabled": False}),
                           log=[str(tmp_path / f"{name}.log")])


@pytest.mark.parametrize("name, settings", [("fig7", {"rho": 1000, "metric": "roc_auc", "layout": "paper"}),
                                            ("table4", {"layout": "paper", "run_columns": 3})])
def test_the_generic_script_draws_a_figure(tmp_path, monkeypatch, table, name, settings):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    fake = fake_rule(tmp_path, table, name, {**settings, "datasets": ["mnist"]})
    runpy.run_path(str(SCRIPTS / "plot_figure.py"), init_globals={"snakemake": fake})
    assert_pdf(fake.output.pdf)
    assert set(pd.read_csv(fake.output.csv)["dataset"]) == {"mnist"}
    assert "drew" in (tmp_path / f"{name}.log").read_text()
    fake.params.settings = {**settings, "profile": "step-mu0.2-rho10"}
    with pytest.raises(figures.FigureSettingsError, match=rf"{name}: unknown setting\(s\) \['profile'\]"):
        runpy.run_path(str(SCRIPTS / "plot_figure.py"), init_globals={"snakemake": fake})


def test_the_generic_script_draws_only_the_figures_runs(tmp_path, monkeypatch, table):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    runs = table.loc[(table["dataset"] == "cifar") & (table["seed"] < 3), ["dataset", "profile", "seed", "variant"]]
    fake = fake_rule(tmp_path, table, "fig3", {"metric": "roc_auc"}, runs.drop_duplicates())
    runpy.run_path(str(SCRIPTS / "plot_figure.py"), init_globals={"snakemake": fake})
    written = pd.read_csv(fake.output.csv)
    assert set(written["dataset"]) == {"cifar"} and (written["n"] == 2).all()
    assert written["sd"].to_list() == pytest.approx([math.sqrt(0.01 ** 2 / 2)] * len(written))  # seeds 1 and 2


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
    monkeypatch.syspath_prepend(str(SCRIPTS))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    fake = fake_rule(tmp_path, searched_table(), "table4", REQUIRED["table4"])
    runpy.run_path(str(SCRIPTS / "plot_figure.py"), init_globals={"snakemake": fake})
    assert_pdf(fake.output.pdf)
    written = pd.read_csv(fake.output.csv, keep_default_na=False)
    assert (written["select_on"] == "validation").all()
    for _, row in written.iterrows():
        best = planted("mnist", "over", row["rho"], row["metric"]) + 0.05 + 0.01  # lr 0.01, seed 3
        assert row["over_mean"] == pytest.approx(best) and row["over_n"] == 1 and row["over_sd"] == 0
        assert row["baseline_mean"] == pytest.approx(planted("mnist", "baseline", row["rho"], row["metric"]))
        assert row["baseline_n"] == len(SEEDS)


def test_titles_name_the_split_a_search_selected_on():
    chosen = selection.mark_selected(searched_table())
    rows = figures.final_scores(chosen, "roc_auc")
    assert _selection_text(rows) == "; searched runs' learning rate selected on the validation split"
    over = rows[rows["method"] == "over"]
    assert _selection_text(over) == "; learning rate selected on the validation split"
    assert _selection_text(over.assign(select_on="test")).endswith("on the test split (optimistic)")
    assert _selection_text(rows[rows["method"] == "baseline"]) == ""
    assert set(over["variant"]) == {"over-lr0.01"} and set(over["seed"]) == {3}


def test_dynamics_draws_two_pages_of_group_curves(tmp_path, table):
    written = draw(table, tmp_path, "dynamics", methods=["baseline", "over"])
    content = (tmp_path / "dynamics.pdf").read_bytes()
    assert content.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page(?!s)", content)) == 2
    assert list(written.columns) == ["dataset", "profile", "method", "quantity", "split", "group",
                                     "iteration"] + SUMMARY
    assert set(written["profile"]) == {PROFILE} and list(dict.fromkeys(written["method"])) == ["baseline", "over"]
    assert list(dict.fromkeys(written["quantity"])) == ["recall", "generalisation_gap", "silhouette"]
    lines = {"recall": [(split, group) for split in ("train", "test") for group in ("majority", "minority")],
             "generalisation_gap": [("train-test", "majority"), ("train-test", "minority")],
             "silhouette": [("test", "majority"), ("test", "minority")]}
    for (dataset, method, quantity), rows in written.groupby(["dataset", "method", "quantity"]):
        assert list(zip(rows["split"], rows["group"], rows["iteration"])) == [
            (split, group, iteration) for split, group in lines[quantity] for iteration in ITERATIONS]
        assert (rows["n"] == len(SEEDS)).all()
        for row in rows.itertuples():
            if quantity == "generalisation_gap":  # per run train - test: the seeds' offsets cancel
                expected = 0.05 + 0.1 * (row.group == "minority")
                assert row.mean == pytest.approx(expected) and row.sd == pytest.approx(0, abs=1e-9)
                continue
            recall = planted(dataset, method, 1000, "recall", "train" if row.split == "train" else "test", False,
                             row.group, row.iteration)
            assert row.mean == pytest.approx(recall - 0.5 * (quantity == "silhouette"))
            assert row.sd == pytest.approx(0.01)


def test_dynamics_without_group_means_names_what_is_missing(tmp_path, table):
    with pytest.raises(figures.ScoreTableError, match="^dynamics: nothing to draw.*metric recall"):
        figures.FIGURES["dynamics"](table[table["metric"] != "recall"], tmp_path / "x.pdf", tmp_path / "x.csv",
                                    profile=PROFILE)


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


def test_a_diverged_run_is_left_out_and_named_in_the_title(tmp_path, table, monkeypatch):
    from imbalance_study.figures import lines

    run = ((table["dataset"] == "mnist") & (table["method"] == "over") & (table["seed"] == 1)
           & (table["profile"] == "step-mu0.2-rho10"))
    marked = selection.mark_selected(table.assign(diverged_at=np.where(run, 100, np.nan)))
    titles, finish = [], lines._finish
    monkeypatch.setattr(lines, "_finish", lambda figure, path, title, *rest, **named: (
        titles.append(title), finish(figure, path, title, *rest, **named)))
    written = draw(marked, tmp_path, "fig3", datasets=["mnist"])
    point = written[(written["method"] == "over") & (written["n_minority"] == 2) & (written["rho"] == 10)]
    assert point["n"].tolist() == [2] and (written.drop(point.index)["n"] == 3).all()
    assert "1 run diverged and left out: mnist/step-mu0.2-rho10/seed1/over at iteration 100" in titles[0]


@pytest.mark.parametrize("name", ["fig8", "dynamics"])
def test_early_stops_are_marked_at_each_panels_median(tmp_path, monkeypatch, name):
    """A dotted vertical line per panel at the median ``stopped_at`` of its runs that stopped: baseline's
    seeds stopped at 10, 100 and 1000 (median 100, mean 370), over's seed 1 at 10 and the others never;
    under never stopped, and a table without the column (older score files) draws no line at all."""
    import matplotlib.pyplot as plt

    from imbalance_study.figures.style import EARLY_STOP_GID, EARLY_STOP_LABEL

    small = score_table(datasets=("mnist",))
    small = small[(small["profile"] == PROFILE) & small["method"].isin(["baseline", "over", "under"])]
    stops = {("baseline", 1): 10, ("baseline", 2): 100, ("baseline", 3): 1000, ("over", 1): 10}
    stopped = small.assign(stopped_at=[stops.get(key, math.nan) for key in zip(small["method"], small["seed"])])
    kept, close = [], plt.close
    monkeypatch.setattr(plt, "close", kept.append)

    def marks(table):
        """Per panel of the (first) page, the x of its early-stop lines; the legend's labels; the CSV."""
        kept.clear()
        written = draw(table, tmp_path, name)
        page = kept[0]  # dynamics: page 1
        found = {axis.get_title(): [line.get_xdata()[0] for line in axis.get_lines()
                                    if line.get_gid() == EARLY_STOP_GID] for axis in page.axes if axis.get_visible()}
        labels = [text.get_text() for legend in page.legends for text in legend.get_texts()]
        for figure in kept:
            close(figure)
        return found, labels, written

    found, labels, written = marks(stopped)
    assert found == {"mnist: baseline": [100], "mnist: over": [10], "mnist: under": []}
    assert labels.count(EARLY_STOP_LABEL) == 1
    found, labels, before = marks(small)
    assert found == {"mnist: baseline": [], "mnist: over": [], "mnist: under": []} and EARLY_STOP_LABEL not in labels
    pd.testing.assert_frame_equal(written, before)  # the CSV does not change


def test_every_method_of_a_figure_has_its_own_colour_and_the_papers_keep_theirs():
    """The short form's ten methods: ten colours (two had shared one, cycling over every known method);
    the paper's methods the same colours whatever else is drawn."""
    import seaborn as sns

    from imbalance_study.figures.style import _style

    ten = ["baseline", "over", "under", "class_balanced", "weighted", "focal", "la_loss", "ldam_drw", "crt", "tau_norm"]
    assert len({_style(method, ten)["color"] for method in ten}) == len(ten)
    for position, method in enumerate(figures.METHOD_ORDER):
        assert _style(method, ten)["color"] == _style(method, [method])["color"] == \
            sns.color_palette("colorblind", 10)[position]
    many = [f"method_{k:02d}" for k in range(30)]
    assert len({tuple(_style(method, many).values()) for method in many}) == len(many)  # colour and marker


def test_panels_wrap_into_rows_of_five_and_short_log_axes_label_major_ticks_only():
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from imbalance_study.figures.style import _iteration_axis, _wrapped_grid

    panels = {"a": [f"m{k}" for k in range(10)], "b": ["m0", "m1"]}
    figure, cells = _wrapped_grid(panels, lambda dataset, key: f"{dataset}: {key}")
    where = {title: (axis.get_subplotspec().rowspan.start, axis.get_subplotspec().colspan.start)
             for title, axis in ((axis.get_title(), axis) for _, _, axis in cells)}
    assert where["a: m4"] == (0, 4) and where["a: m5"] == (1, 0) and where["b: m1"] == (2, 1)
    axis = cells[0][2]
    axis.plot([2, 70], [0, 1])
    _iteration_axis(axis, pd.Series([2, 5, 10, 70]), log_x=True)
    figure.canvas.draw()
    assert isinstance(axis.xaxis.get_minor_formatter(), NullFormatter)
    assert [t.get_text() for t in axis.get_xticklabels() if 2 <= t.get_position()[0] <= 70] == ["3", "10", "30"]
    plt.close(figure)
