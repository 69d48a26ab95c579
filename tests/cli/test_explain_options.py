"""``propgrad explain``'s test options: each reaches ``PropertyGradient.attribute`` (or ``attribute_realisations``).

``--test``, ``--placebos``, ``--placebo``, ``--placebo-stop``, ``--min-effect``, ``--correction``,
``--sequential`` and ``--realisations`` become one :class:`~propgrad.stats.settings.TestSettings`,
built once by ``test_settings`` before the model loads; the JSON record and the printed summary
show what ran.
"""

from __future__ import annotations

import json

import pytest

import propgrad.cli.model_loading
import propgrad.explain.explainer
from propgrad.cli import main
from propgrad.stats.settings import DEFAULT_PLACEBOS, TestSettings, test_settings

QUICK = ["explain", "--size", "24", "--permutations", "200", "--no-progress", "--param", "steps=6"]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main([*QUICK, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def record_of(argv: list[str], tmp_path, capsys) -> dict:
    """The JSON record of a run with ``--out tmp_path``; its printed summary under the key ``"printed"``."""
    code, out, err = run([*argv, "--out", str(tmp_path), "--report-baselines", "none"], capsys)
    assert code == 0, err
    return {**json.loads((tmp_path / "explanation.json").read_text()), "printed": out}


@pytest.fixture
def spy(monkeypatch):
    """The settings (and keywords) each call of attribute / attribute_realisations received; the calls go through."""
    calls: list[tuple[str, dict]] = []
    cls = propgrad.explain.explainer.PropertyGradient
    for name in ("attribute", "attribute_realisations"):
        original = getattr(cls, name)

        def spied(self, *args, _original=original, _name=name, **kwargs):
            calls.append((_name, kwargs))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, spied)
    return calls


def test_the_default_runs_the_placebo_test_beside_the_permutation_test(tmp_path, capsys):
    record = record_of([], tmp_path, capsys)
    assert record["placebo"] is not None and record["placebo"]["n_placebos"] == DEFAULT_PLACEBOS == 100
    assert record["test"]["n_permutations"] == 200
    assert "placebo test" in record["printed"] and "permutation test" in record["printed"]


def test_test_permutation_runs_the_papers_test_alone(tmp_path, capsys):
    record = record_of(["--test", "permutation"], tmp_path, capsys)
    assert record["placebo"] is None
    assert record["test"]["n_permutations"] == 200


def test_placebos_sets_m(tmp_path, capsys):
    record = record_of(["--placebos", "20", "--alpha", "0.1"], tmp_path, capsys)
    assert record["placebo"]["n_placebos"] == 20


def test_the_record_names_the_permutation_stream_that_reproduces_it(tmp_path, capsys):
    default = record_of(["--test", "permutation", "--seed", "4"], tmp_path / "default", capsys)
    assert (default["test"]["seed"], default["test"]["permutation_stream"]) == (4, 2)
    again = record_of(["--test", "permutation", "--seed", "4"], tmp_path / "again", capsys)
    assert again["p_value"] == default["p_value"]
    older = record_of(["--test", "permutation", "--seed", "4", "--permutation-stream", "1"], tmp_path / "one", capsys)
    assert older["test"]["permutation_stream"] == 1
    assert older["test"]["statistic"] == default["test"]["statistic"]  # the observed statistic does not depend on it


def test_min_effect_changes_significance(tmp_path, capsys):
    longer = ["--test", "permutation", "--permutations", "500", "--size", "48", "--param", "steps=11"]
    base = record_of(longer, tmp_path / "base", capsys)
    assert any(base["significant"]), "the example model's response to the patch is significant without a floor"
    floor = max(base["score"]) * 2
    raised = record_of([*longer, "--min-effect", str(floor)], tmp_path, capsys)
    assert raised["min_effect"] == floor
    assert raised["p_value"] == base["p_value"] and not any(raised["significant"])


def test_correction_adjusts_the_p_values_over_the_columns(tmp_path, capsys):
    record = record_of(["--test", "permutation", "--correction", "holm"], tmp_path, capsys)
    assert record["correction"] == "holm"
    adjusted, raw = record["p_value_adjusted"], record["p_value"]
    assert adjusted is not None and len(adjusted) == len(raw) == 2
    assert all(a >= r for a, r in zip(adjusted, raw))
    none = record_of(["--test", "permutation", "--correction", "none"], tmp_path / "none", capsys)
    assert none["correction"] is None and none["p_value_adjusted"] is None


def test_every_test_option_reaches_attribute_as_one_settings_object(spy, capsys):
    argv = [
        "--placebos", "30", "--placebo", "region", "--placebo-stop", "none", "--min-effect", "0.5",
        "--correction", "bh", "--sequential", "7", "--alpha", "0.05", "--seed", "3", "--per", "unit",
        "--permutation-stream", "1",
    ]  # fmt: skip
    code, _, err = run(argv, capsys)
    assert code == 0, err
    ((name, kwargs),) = spy
    assert name == "attribute"
    assert kwargs["settings"] == test_settings(
        n_permutations=200,
        alpha=0.05,
        seed=3,
        per="unit",
        sequential=7,
        correction="bh",
        min_effect=0.5,
        n_placebos=30,
        placebo="region",
        placebo_stop=None,
        permutation_stream=1,
    )


def test_placebo_stop_takes_a_number_and_defaults_to_the_librarys_automatic_stop(spy, capsys):
    assert run(["--placebo-stop", "4"], capsys)[0] == 0
    assert run([], capsys)[0] == 0
    assert [kwargs["settings"].placebo_stop for _, kwargs in spy] == [4, TestSettings().placebo_stop]
    assert spy[1][1]["settings"] == test_settings(n_permutations=200)


def test_realisations_run_attribute_realisations_and_print_their_summary(spy, tmp_path, capsys):
    code, out, err = run(
        ["--realisations", "3", "--seed", "5", "--placebos", "20", "--alpha", "0.1", "--out", str(tmp_path)]
        + ["--report-baselines", "none"],
        capsys,
    )
    assert code == 0, err
    ((name, kwargs),) = spy
    assert name == "attribute_realisations" and kwargs["settings"].seed == 5 and kwargs["settings"].n_placebos == 20
    assert "3 realisations (seeds 5, 6, 7)" in out and "placebo test" in out
    record = json.loads((tmp_path / "realisations.json").read_text())
    assert record["seeds"] == [5, 6, 7] and len(record["realisations"]) == 3 and record["labels"] == ["warm", "cool"]
    assert record["placebo"] is not None
    assert (tmp_path / "realisations.png").stat().st_size > 0
    first = json.loads((tmp_path / "explanation.json").read_text())
    assert first["score"] == record["realisations"][0]["score"]  # the saved explanation is realisation 1


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--test", "permutation", "--placebos", "20"], ["--placebos sets the placebo test", "--test both"]),
        (
            ["--test", "permutation", "--placebo", "region", "--placebo-stop", "3"],
            ["--placebo and --placebo-stop set the placebo test"],
        ),
        (["--placebos", "0"], ["--placebos 0 runs no placebo test", "--test permutation"]),
        (["--placebos", "-3"], ["n_placebos must be"]),
        (["--placebo-stop", "0"], ["placebo_stop must be"]),
        (["--sequential", "0"], ["sequential must be"]),
        (["--min-effect", "-1"], ["min_effect"]),
        (["--min-effect", "nan"], ["min_effect"]),
        (["--realisations", "0"], ["--realisations must be a positive integer"]),
        (["--alpha", "0"], ["alpha must be a number in (0, 1)"]),
    ],
)
def test_bad_test_options_are_one_line_errors_before_the_model_loads(argv, fragments, capsys, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("the model loaded before the test options were checked")

    monkeypatch.setattr(propgrad.cli.model_loading, "load_model", no_model)
    code, _, err = run(argv, capsys)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("propgrad explain: error: ")
    for fragment in fragments:
        assert fragment in line, line


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--test", "placebo"], "invalid choice: 'placebo'"),
        (["--placebo", "pixels"], "invalid choice: 'pixels'"),
        (["--correction", "bonferroni"], "invalid choice: 'bonferroni'"),
        (["--placebo-stop", "soon"], "expected a whole number h of placebos, 'auto' or 'none'"),
        (["--placebos", "many"], "invalid int value: 'many'"),
        (["--permutation-stream", "3"], "invalid choice: 3 (choose from 1, 2)"),
        (["--min-effect", "big"], "invalid float value: 'big'"),
    ],
)
def test_option_types_and_choices_are_checked_by_the_parser(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*QUICK, *argv])
    assert exc.value.code == 2
    assert fragment in capsys.readouterr().err


def test_statistic_vector_l1_scores_the_whole_output_vector_once(tmp_path, capsys):
    record = record_of(["--statistic", "vector_l1"], tmp_path, capsys)
    assert record["test"]["statistic_name"] == "vector_l1" and len(record["score"]) == 1
    assert "all outputs" in record["printed"] and "E||grad||_1" in record["printed"]
    assert record["effect_size"] is not None and len(record["effect_size"]) == 1


def test_the_cli_statistic_choices_are_the_librarys():
    from propgrad.stats.defaults import STATISTIC_NAMES
    from propgrad.stats.statistic import STATISTICS

    assert tuple(STATISTIC_NAMES) == tuple(STATISTICS)
