"""`snakemake --report`: one self-contained report of a finished study, each output captioned for its config."""

import base64
import copy
import html
import json
import re
import zipfile
from pathlib import Path

import pytest

from .test_workflow import TINY, snakemake

pytestmark = pytest.mark.workflow

# The tiny study with two seeds, no two-phase method and only the step profiles (about 40 s): fig3
# draws two of the three methods, so its caption must name those two, not the study's three.
CONFIG = copy.deepcopy(TINY)
CONFIG["methods"].pop("twophase_over")
CONFIG["study"].update(seeds=[3, 7], methods=["baseline", "over", "under"])
del CONFIG["study"]["profiles"]["linear"]
CONFIG["figures"] = {"fig3": {"methods": ["baseline", "over"]}, "fig8": {}, "dynamics": {}, "comparison": {}}
CONFIG["scoring"] = {"train_sample_per_class": 30}  # the captions say the train scores are estimates


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    snakemake(workdir, config=CONFIG)
    return workdir


def embedded(page: str, name: str):
    """A JavaScript variable of the report page (``var name = ...``, JSON), decoded."""
    start = page.rindex(f"var {name} = ") + len(f"var {name} = ")
    return json.JSONDecoder().raw_decode(page, start)[0]


def text(markup: str) -> str:
    """Rendered caption HTML as plain text, line breaks as spaces."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", markup)).split())


def test_the_report_holds_every_figure_the_scores_and_the_config_with_captions(study, tmp_path):
    report = tmp_path / "report.html"
    snakemake(study, "--report", str(report))
    page = report.read_text()
    # Self-contained: no script, style sheet or image fetched from elsewhere; every result inlined.
    assert not re.search(r"<(script|img)[^>]*\ssrc=\"?(https?:)?//", page)
    assert not re.search(r"<link[^>]*\shref=\"?(https?:)?//", page)
    results = embedded(page, "results")
    figures = {f"figures/{name}.{extension}" for name in ("fig3", "fig8", "dynamics") for extension in ("pdf", "csv")}
    comparison = {f"figures/comparison.{extension}" for extension in ("csv", "html", "pdf")}
    assert set(results) == figures | comparison | {"results/scores.csv", "results/scores.provenance.json"}
    for path, result in results.items():
        assert result["data_uri"].startswith("data:") and ";base64," in result["data_uri"], path
        # Jinja filled every placeholder in; nothing reached the page raw.
        assert "{{" not in result["caption"] and "{%" not in result["caption"], path
        assert text(result["caption"]), path
    assert embedded(page, "categories") == {
        "Figures": {name: [f"figures/{name}.csv", f"figures/{name}.pdf"] for name in ("dynamics", "fig3", "fig8")},
        "Scores": {"Other": ["results/scores.csv"]}, "Config": {"Other": ["results/scores.provenance.json"]},
        "Which method should I use?": {"Other": sorted(comparison)}}

    fig3 = text(results["figures/fig3.pdf"]["caption"])
    assert "Figure 3: ROC AUC (one-vs-rest, macro) against the imbalance ratio ρ, step imbalance." in fig3
    assert "mean over the repeats (seeds)" in fig3 and "balanced test set" in fig3
    # ... for this config: the figure's own methods (figures.fig3.methods), the study's seeds and profiles.
    assert "Methods: baseline (sampler none), over (sampler over)." in fig3 and "sampler under" not in fig3
    assert "Seeds (repeats): 3, 7; each repeat draws its own imbalanced set (repeats: new_data)." in fig3
    assert "μ ∈ {0.5} × ρ ∈ {2, 10}" in fig3
    # The settings as the figure was drawn with them: the config's, and the schema's defaults.
    assert 'Settings figures.fig3: {"methods": ["baseline", "over"], "metric": "roc_auc"}.' in fig3
    assert "fig3.csv holds the numbers the figure draws." in fig3
    fig8 = text(results["figures/fig8.pdf"]["caption"])
    assert "Figure 8: train and test accuracy over training, profile step-mu0.5-rho10." in fig8
    assert "Methods: baseline (sampler none), over (sampler over), under (sampler under)." in fig8
    dynamics = text(results["figures/dynamics.pdf"]["caption"])
    assert "Learning dynamics: why imbalance hurts, profile step-mu0.5-rho10." in dynamics
    estimated = "estimated from at most 30 distinct examples per majority class"
    assert estimated in fig8 and estimated in dynamics and estimated not in fig3

    # "Which method should I use?": the page of sentences generated from the numbers, one per set.
    answer = text(results["figures/comparison.html"]["caption"])
    assert "Which method should I use? Every method against baseline, paired by seed" in answer
    assert ('Settings figures.comparison: {"confidence": 0.95, "metric": "roc_auc", "reference": "baseline"}.'
            in answer and "Seeds (repeats): 3, 7" in answer)
    answer_page = base64.b64decode(results["figures/comparison.html"]["data_uri"].split(";base64,")[1]).decode()
    sentences = re.findall(r"<li>(On .*?)</li>", answer_page)
    assert [sentence.split(" (")[0] for sentence in sentences] == ["On step-mu0.5-rho2", "On step-mu0.5-rho10"]
    assert all("(ROC AUC, 2 seeds, too few for a 95% CI" in sentence for sentence in sentences)
    assert "Over 2 imbalanced sets, the mean ranks (1 = best) are " in answer_page and "<svg" in answer_page

    scores = text(results["results/scores.csv"]["caption"])
    assert scores.startswith("The score table:") and "seeds 3, 7" in scores and estimated in scores
    config = text(results["results/scores.provenance.json"]["caption"])
    assert '"seeds": [ 3, 7 ]' in config and '"fig3": { "methods": [ "baseline", "over" ], "metric": "roc_auc" }' in config

    front = text(embedded(page, "workflow_desc"))  # the Snakefile's report: text, the report's front page
    assert "What to look at first." in front and "fig3.pdf (Figures): ROC AUC" in front
    assert "dynamics.pdf (Figures): why imbalance hurts" in front


def test_the_report_can_be_a_zip_archive(study, tmp_path):
    archive = tmp_path / "report.zip"
    snakemake(study, "--report", str(archive))
    with zipfile.ZipFile(archive) as files:
        names = files.namelist()
        page = files.read(next(name for name in names if name.endswith("/report.html"))).decode()
    # The results lie beside the page, each linked from it, with the same captions.
    results = embedded(page, "results")
    for path, result in results.items():
        assert any(name.endswith(result["data_uri"]) for name in names), path
    assert {Path(path).name for path in results} >= {"fig3.pdf", "scores.csv", "scores.provenance.json"}
    assert "Seeds (repeats): 3, 7; each repeat" in text(results["figures/fig3.pdf"]["caption"])
