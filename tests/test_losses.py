"""Each loss against its published formula, written out in numpy float64 on hand-made logits and counts.

Which limits hold, precisely (each is a test below):
- equal class counts: inverse and effective-number weights are all 1, and log prior is one constant
  that softmax ignores, so weighted cross-entropy, logit-adjusted loss (any tau) and balanced softmax
  are plain cross-entropy; focal loss is unaffected by counts and is cross-entropy at gamma = 0 only;
  LDAM's margins are then all equal to max_margin, which still shifts the target logit: LDAM is plain
  cross-entropy only with max_margin 0 and scale 1, whatever the counts;
- logit-adjusted tau = 0 is cross-entropy, and balanced softmax equals logit-adjusted tau = 1;
- effective-number weights tend to inverse frequency as beta -> 1 and are uniform at beta = 0.

A network trained alone passes its gamma and scale as numbers (``RunLosses.one``), which ``general``
computes with fewer operators: each formula is checked that way too, and against the tensor form a
stacked bundle maps (values and gradients, including p = 1 where focal loss needs its guard).

Tolerances: ``general`` and the numpy reference compute the same sums in other orders; a sum of n
float64 terms reordered differs by at most about n * 2^-53 of the sum of their magnitudes, so with a
few operations per term, ``RTOL`` = 64 * 2^-53 (about 7e-15) bounds it for these batches of at most
8 examples and 4 classes, while a wrong formula is off by more than 1e-3.
"""

import itertools

import numpy as np
import pytest
import torch

from imbalance_study import losses

RTOL = 64 * 2.0 ** -53
CLOSE = dict(rtol=RTOL, atol=RTOL)

LOGITS = np.array([[2.0, -1.0, 0.5, 0.0],
                   [0.3, 0.1, -0.2, 1.5],
                   [-1.0, 2.5, 0.0, 0.7],
                   [0.0, 0.0, 3.0, -2.0],
                   [1.2, -0.4, 0.9, 0.2],
                   [-0.5, 0.8, -1.1, 2.2]])
TARGETS = np.array([0, 3, 1, 2, 2, 3])
COUNTS = np.array([500, 120, 30, 4])
EQUAL = np.array([50, 50, 50, 50])

DEFAULTS = dict(weights="none", beta=0.9999, weights_from=0.0, gamma=2.0, max_margin=0.5, scale=30.0, tau=1.0)


def setting(name, **overrides):
    return {"name": name, **DEFAULTS, **overrides}


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def reference(loss, counts, logits=LOGITS, targets=TARGETS):
    """The published formulas, each written out on its own (not through ``general``'s parameters)."""
    rows = np.arange(len(targets))
    n_classes = logits.shape[1]
    if loss["weights"] == "inverse":
        weights = (1 / counts) / (1 / counts).sum() * n_classes
    elif loss["weights"] == "effective_number":
        beta = loss["beta"]
        raw = (1 - beta) / (1 - beta ** counts.astype(float))
        weights = raw / raw.sum() * n_classes
    else:
        weights = np.ones(n_classes)
    name = loss["name"]
    if name == "ldam":  # Cao et al.: subtract m_y from the target logit, scale by s, cross-entropy
        margins = counts.astype(float) ** -0.25
        margins *= loss["max_margin"] / margins.max()
        z = logits.copy()
        z[rows, targets] -= margins[targets]
        terms = -log_softmax(loss["scale"] * z)[rows, targets]
    elif name == "logit_adjusted":  # Menon et al.: logits + tau log pi in the loss
        terms = -log_softmax(logits + loss["tau"] * np.log(counts / counts.sum()))[rows, targets]
    elif name == "balanced_softmax":  # Ren et al.: softmax with n_j exp(z_j)
        terms = -log_softmax(logits + np.log(counts.astype(float)))[rows, targets]
    elif name == "focal":  # Lin et al.: -(1 - p)^gamma log p
        log_p = log_softmax(logits)[rows, targets]
        terms = -(1 - np.exp(log_p)) ** loss["gamma"] * log_p
    else:
        terms = -log_softmax(logits)[rows, targets]
    w = weights[targets]
    return (w * terms).sum() / w.sum()


def parameters(loss, counts, n_classes, host=False):
    """``general``'s parameters as tensors (as a stacked bundle maps them) or, ``host``, with gamma and
    scale as numbers (as ``RunLosses.one`` passes them for a network alone)."""
    tensors = {name: torch.tensor(value, dtype=torch.float64)
               for name, value in losses.parameters_of(loss, counts, n_classes).items()}
    return {**tensors, "gamma": float(tensors["gamma"]), "scale": float(tensors["scale"])} if host else tensors


def computed(loss, counts, logits=LOGITS, targets=TARGETS, terms=losses.TERMS, host=False):
    return float(losses.general(torch.tensor(logits), torch.tensor(targets),
                                **parameters(loss, counts, logits.shape[1], host), terms=terms))


def plain_cross_entropy(logits=LOGITS, targets=TARGETS):
    return float(torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(targets)))


ALL = [setting("cross_entropy"), setting("cross_entropy", weights="inverse"),
       setting("cross_entropy", weights="effective_number", beta=0.99), setting("focal"),
       setting("focal", gamma=0.5, weights="inverse"), setting("focal", gamma=1.0),
       setting("focal", gamma=3.0, weights="effective_number"), setting("focal", gamma=4.0),
       setting("ldam"), setting("ldam", max_margin=0.3, scale=10.0, weights="effective_number"),
       setting("ldam", scale=1.0), setting("logit_adjusted"), setting("logit_adjusted", tau=1.5),
       setting("balanced_softmax")]


def ids(loss):
    numbers = {"focal": "gamma", "ldam": "scale", "logit_adjusted": "tau"}
    return "-".join([loss["name"], loss["weights"]] + ([str(loss[numbers[loss["name"]]])]
                                                        if loss["name"] in numbers else []))


@pytest.mark.parametrize("loss", ALL, ids=ids)
def test_each_loss_is_its_formula(loss):
    expected = reference(loss, COUNTS)
    assert computed(loss, COUNTS) == pytest.approx(expected, rel=RTOL)
    # With only the parts the loss needs (what an engine computes for a bundle of this loss alone),
    # and so for a network alone, gamma and scale as numbers.
    assert computed(loss, COUNTS, terms=losses.terms_of([loss])) == pytest.approx(expected, rel=RTOL)
    assert computed(loss, COUNTS, terms=losses.terms_of([loss]), host=True) == pytest.approx(expected, rel=RTOL)
    if loss["name"] != "cross_entropy" or loss["weights"] != "none":
        assert abs(expected - plain_cross_entropy()) > 1e-3  # each departs from plain cross-entropy here


@pytest.mark.parametrize("loss", [setting("cross_entropy", weights="inverse"),
                                  setting("cross_entropy", weights="effective_number"),
                                  setting("logit_adjusted", tau=1.7), setting("balanced_softmax"),
                                  setting("focal", gamma=0.0, weights="inverse")],
                         ids=lambda loss: f"{loss['name']}-{loss['weights']}")
def test_equal_counts_reduce_to_plain_cross_entropy(loss):
    assert computed(loss, EQUAL) == pytest.approx(plain_cross_entropy(), rel=RTOL)


def test_ldam_is_cross_entropy_only_with_neutral_margins_and_scale():
    neutral = setting("ldam", max_margin=0.0, scale=1.0)
    for terms in (losses.TERMS, losses.terms_of([neutral])):
        assert computed(neutral, COUNTS, terms=terms) == pytest.approx(plain_cross_entropy(), rel=RTOL)
    # Equal counts give every class the margin max_margin: still not cross-entropy.
    assert abs(computed(setting("ldam", scale=1.0), EQUAL) - plain_cross_entropy()) > 1e-2


def test_logit_adjusted_tau_zero_is_cross_entropy_and_tau_one_is_balanced_softmax():
    neutral = setting("logit_adjusted", tau=0.0)
    for terms in (losses.TERMS, losses.terms_of([neutral])):
        assert computed(neutral, COUNTS, terms=terms) == pytest.approx(plain_cross_entropy(), rel=RTOL)
    assert computed(setting("logit_adjusted", tau=1.0), COUNTS) == pytest.approx(
        computed(setting("balanced_softmax"), COUNTS), rel=RTOL)


def test_focal_gamma_zero_is_cross_entropy():
    neutral = setting("focal", gamma=0.0)
    for terms in (losses.TERMS, losses.terms_of([neutral])):
        for host in (False, True):
            assert computed(neutral, COUNTS, terms=terms, host=host) == pytest.approx(plain_cross_entropy(), rel=RTOL)


def test_effective_number_weights_tend_to_inverse_frequency_and_to_uniform():
    inverse = losses.class_weights(COUNTS, "inverse")
    assert inverse == pytest.approx([4 / (1 + 500 / 120 + 500 / 30 + 500 / 4) * 500 / n for n in COUNTS], rel=RTOL)
    assert inverse.sum() == pytest.approx(4, rel=RTOL)
    assert losses.class_weights(COUNTS, "effective_number", beta=0.0) == pytest.approx(np.ones(4), rel=RTOL)
    gaps = [np.abs(losses.class_weights(COUNTS, "effective_number", beta=1 - 10.0 ** -k) - inverse).max()
            for k in (2, 4, 6, 8)]
    assert all(later < earlier / 50 for earlier, later in zip(gaps, gaps[1:])) and gaps[-1] < 1e-5
    # By hand at beta 0.9: (1 - 0.9) / (1 - 0.9^n), normalised to sum 4.
    raw = np.array([0.1 / (1 - 0.9 ** n) for n in COUNTS])
    assert losses.class_weights(COUNTS, "effective_number", beta=0.9) == pytest.approx(raw / raw.sum() * 4, rel=RTOL)


def test_ldam_margins_follow_n_to_the_minus_quarter_with_the_largest_at_max_margin():
    margins = losses.ldam_margins(COUNTS, 0.5)
    assert margins.max() == margins[-1] == pytest.approx(0.5, rel=RTOL)  # the smallest class
    assert margins == pytest.approx(0.5 * (4 / COUNTS) ** 0.25, rel=RTOL)


def test_focal_at_certainty_has_finite_gradients():
    """p = 1 exactly (the other logits 1000 below): (1 - p)^gamma is 0^gamma, whose derivative is
    infinite for gamma in (0, 1) unless the factor is guarded (at gamma 0 pow's own gradient is 0);
    gamma as a tensor (a stacked bundle, always guarded) and as a number (a network alone, guarded
    only in (0, 1))."""
    logits = np.array([[0.0, -1000.0, -1000.0], [0.2, 0.1, -0.3]])
    targets = torch.tensor([0, 2])
    for gamma, host in itertools.product((0.0, 0.5, 1.0, 2.0, 3.0), (False, True)):
        x = torch.tensor(logits, requires_grad=True)
        loss = losses.general(x, targets, **parameters(setting("focal", gamma=gamma), np.ones(3), 3, host))
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(x.grad).all(), (gamma, host)
        if gamma == 0.0:
            reference = torch.tensor(logits, requires_grad=True)
            torch.nn.functional.cross_entropy(reference, targets).backward()
            torch.testing.assert_close(x.grad, reference.grad, **CLOSE)


def test_neutral_parameters_compute_cross_entropy_and_its_gradient():
    """The general form with neutral parameters (what a plain-CE run computes in a bundle that mixes
    losses) against ``nn.functional.cross_entropy``: the same terms, summed in another order."""
    x = torch.tensor(LOGITS, requires_grad=True)
    reference = torch.tensor(LOGITS, requires_grad=True)
    neutral = {name: torch.tensor(value) for name, value in
               losses.parameters_of(setting("cross_entropy"), None, 4).items()}
    value = losses.general(x, torch.tensor(TARGETS), **neutral)
    expected = torch.nn.functional.cross_entropy(reference, torch.tensor(TARGETS))
    value.backward()
    expected.backward()
    torch.testing.assert_close(value, expected, **CLOSE)
    torch.testing.assert_close(x.grad, reference.grad, **CLOSE)


# Logits from far from the target to certain of it (p = 1 exactly in the first row, -log p = 2^-52,
# the least above 0, and about 2^-41 in the next ones): where focal loss's guard, or the sign an even
# power leaves out, would show if they changed anything.
EDGES = np.array([[0.0, -1000.0, -1000.0, -1000.0],
                  [0.0, -36.0, -38.0, -45.0],
                  [0.0, -29.0, -30.5, -31.0],
                  [0.0, -12.0, -15.0, -20.0],
                  [-1.0, 3.0, 0.0, 0.0],
                  [8.0, -8.0, 0.0, 2.0]])
EDGE_TARGETS = np.array([0, 0, 0, 0, 0, 1])


@pytest.mark.parametrize("loss", ALL + [setting("focal", gamma=0.3, weights="inverse"), setting("focal", gamma=2.5)],
                         ids=ids)
@pytest.mark.parametrize("logits, targets", [(LOGITS, TARGETS), (EDGES, EDGE_TARGETS)], ids=["logits", "edges"])
def test_a_network_alone_computes_the_stacked_form_and_its_gradient(loss, logits, targets):
    """Gamma and scale as numbers (``RunLosses.one``) against tensors (a stacked bundle), each with the
    parts the loss needs: the same sums, up to the rounding of pow's kernels (``RTOL``)."""
    values, gradients = [], []
    for host in (False, True):
        x = torch.tensor(logits, requires_grad=True)
        value = losses.general(x, torch.tensor(targets), **parameters(loss, COUNTS, 4, host),
                               terms=losses.terms_of([loss]))
        value.backward()
        values.append(value)
        gradients.append(x.grad)
    assert torch.isfinite(gradients[1]).all()
    torch.testing.assert_close(values[1], values[0], **CLOSE)
    torch.testing.assert_close(gradients[1], gradients[0], **CLOSE)
    assert values[1].item() == pytest.approx(reference(loss, COUNTS, logits, targets), rel=RTOL)


def test_run_losses_pass_a_network_alone_its_numbers_and_views():
    """``RunLosses.one`` passes gamma and scale as numbers (the dtype's) and views of the stacked
    tensors (an in-place switch of the weights reaches them), and computes the stacked form's loss."""
    settings = [setting("focal", gamma=0.3, weights="inverse", weights_from=0.5)]
    run_losses = losses.RunLosses(settings, [COUNTS], 4, iterations=10, device=torch.device("cpu"),
                                  dtype=torch.float32)
    alone = run_losses.alone
    assert type(alone["gamma"]) is float and alone["gamma"] == float(np.float32(0.3)) and alone["scale"] == 1.0
    assert all(alone[name].data_ptr() == run_losses.parameters[name].data_ptr()
               for name in ("weights", "offsets", "margins"))
    logits, targets = torch.tensor(LOGITS, dtype=torch.float32), torch.tensor(TARGETS)
    for iteration in (0, 5):
        run_losses.start_at(iteration)
        stacked_form = losses.general(logits, targets, **run_losses.of(0), terms=run_losses.terms)
        torch.testing.assert_close(run_losses.one(logits, targets), stacked_form)
        assert torch.equal(alone["weights"], run_losses.parameters["weights"][0])
    assert not torch.equal(run_losses.parameters["weights"][0], torch.ones(4))  # switched on at 5


def test_only_the_parts_a_loss_needs_are_computed():
    assert losses.terms_of([setting("cross_entropy")]) == frozenset()
    # A setting that makes a loss's own part neutral: that loss is cross-entropy (tests above).
    assert losses.terms_of([setting("focal", gamma=0.0), setting("logit_adjusted", tau=0.0),
                            setting("ldam", max_margin=0.0, scale=1.0)]) == frozenset()
    assert losses.terms_of([setting("ldam", max_margin=0.0, scale=30.0)]) == {"margins"}
    assert losses.terms_of([setting("ldam", max_margin=0.5, scale=1.0)]) == {"margins"}
    assert losses.terms_of([setting("cross_entropy", weights="inverse")]) == {"weights"}
    assert losses.terms_of([setting("ldam", weights="effective_number"), setting("balanced_softmax")]) == \
        {"margins", "offsets", "weights"}
    assert losses.terms_of([setting("focal"), setting("logit_adjusted")]) == {"focal", "offsets"}


@pytest.mark.parametrize("settings", [
    [setting("cross_entropy"), setting("focal"), setting("ldam", weights="inverse"), setting("balanced_softmax")],
    [setting("focal"), setting("focal", gamma=0.5), setting("focal", gamma=0.0), setting("focal", gamma=3.0)]],
    ids=["mixed", "focal_unweighted"])
def test_general_maps_over_networks_with_their_own_losses(settings):
    """vmap over K networks, each with its own parameters, equals each network's loss alone: with
    every part of the formula, and with the parts the bundle needs (focal alone: no weights)."""
    from torch.func import vmap

    stacked = {name: torch.tensor(np.stack([losses.parameters_of(loss, COUNTS, 4)[name] for loss in settings]))
               for name in losses.parameters_of(settings[0], COUNTS, 4)}
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(size=(4, 6, 4)))
    targets = torch.tensor(rng.integers(0, 4, size=(4, 6)))
    for terms in (losses.TERMS, losses.terms_of(settings)):
        # (vmap maps positional arguments only: the parameters go in as one dict, as the engine passes them)
        together = vmap(lambda x, y, parameters: losses.general(x, y, **parameters, terms=terms))(logits, targets,
                                                                                                  stacked)
        for network, loss in enumerate(settings):
            alone = computed(loss, COUNTS, logits[network].numpy(), targets[network].numpy())
            assert float(together[network]) == pytest.approx(alone, rel=RTOL)
            assert alone == pytest.approx(reference(loss, COUNTS, logits[network].numpy(),
                                                    targets[network].numpy()), rel=RTOL)


def test_deferred_weights_switch_on_at_round_of_weights_from_times_iterations():
    settings = [setting("ldam", weights="effective_number", weights_from=0.8),
                setting("cross_entropy", weights="inverse"), setting("focal")]
    run_losses = losses.RunLosses(settings, [COUNTS] * 3, 4, iterations=101, device=torch.device("cpu"),
                                  dtype=torch.float64)
    assert run_losses.switches == [81, 0, 0]  # round(0.8 * 101) = 81: steps 81..100 are weighted
    effective = torch.tensor(losses.class_weights(COUNTS, "effective_number", 0.9999))
    ones = torch.ones(4, dtype=torch.float64)
    seen = []
    run_losses.start_at(0)
    for iteration in range(101):
        run_losses.before_step(iteration)
        seen.append(run_losses.parameters["weights"].clone())
    for iteration, weights in enumerate(seen):
        torch.testing.assert_close(weights[0], effective if iteration >= 81 else ones, rtol=0, atol=0)
        torch.testing.assert_close(weights[1], torch.tensor(losses.class_weights(COUNTS, "inverse")), rtol=0, atol=0)
        torch.testing.assert_close(weights[2], ones, rtol=0, atol=0)
    # A run resumed at any iteration holds the weights an uninterrupted one holds there.
    for resumed_at in (0, 80, 81, 100):
        again = losses.RunLosses(settings, [COUNTS] * 3, 4, 101, torch.device("cpu"), torch.float64)
        again.start_at(resumed_at)
        again.before_step(resumed_at)
        torch.testing.assert_close(again.parameters["weights"], seen[resumed_at], rtol=0, atol=0)


def test_a_loss_that_needs_counts_names_the_problem():
    with pytest.raises(ValueError, match="needs the class counts"):
        losses.parameters_of(setting("focal"), None, 4)
    with pytest.raises(ValueError, match="class 2 has no example in the imbalanced set"):
        losses.parameters_of(setting("balanced_softmax"), np.array([5, 3, 0, 1]), 4)
    with pytest.raises(ValueError, match="loss.name: 'hinge'"):
        losses.parameters_of(setting("hinge"), COUNTS, 4)
