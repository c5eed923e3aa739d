"""The simulator's model file: the example file, the checks that name the bad key, curves."""
from __future__ import annotations

from pathlib import Path

import pytest

from processor import cli
from processor.simulator import DEFAULT_MODEL, ModelError, load_model, load_model_text, model_from_dict, model_to_dict

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "deploy" / "config" / "simulation.example.yaml"


def test_example_file_starts_with_the_default_model():
    model = load_model(EXAMPLE)
    assert model.queues[:3] == DEFAULT_MODEL.queues
    assert (model.customers, model.feed) == (DEFAULT_MODEL.customers, DEFAULT_MODEL.feed)
    assert [(q.queue_id, q.channel, q.is_async) for q in model.queues[3:]] == [("support", "email", True)]
    assert model_from_dict(model_to_dict(model)) == model  # the documented keys are all it takes


@pytest.mark.parametrize("change, message", [
    ({"queues": [{"queue": "q", "handel_time": 3}]}, "queues[0]: unknown key(s) handel_time"),
    ({"queues": [{"queue": "q", "handle_time": {"distribution": "gamma", "mean": 3}}]},
     "queues[0].handle_time.distribution"),
    ({"queues": [{"queue": "q", "handle_time": {"distribution": "lognormal", "mean": 3}}]},
     "queues[0].handle_time: a lognormal distribution takes exactly mean, sd"),
    ({"queues": [{"queue": "q", "transfer": {"probability": 0.1, "to": "nowhere"}}]},
     "queues[0].transfer.to: no queue 'nowhere' with channel voice"),
    ({"queues": [{"queue": "q", "daily_curve": [1, 2, 3]}]}, "queues[0].daily_curve: a list needs 24 values"),
    ({"queues": [{"queue": "q", "patience_seconds": -1}]}, "queues[0].patience_seconds: must be > 0"),
    ({"queues": [{"queue": "q", "time_zone": "Mars/Olympus"}]}, "queues[0].time_zone: unknown time zone"),
    ({"queues": [{"queue": "q", "channel": "fax"}]}, "queues[0].channel: must be one of"),
    ({"queues": [{"queue": "q"}, {"queue": "q"}]}, "queues[1]: queue 'q' with channel voice is given twice"),
    ({"defaults": {"agents": -2}, "queues": [{"queue": "q"}]}, "defaults.agents: must be an integer >= 0"),
    ({"queues": []}, "queues: must be a non-empty list"),
    ({"queue": [{"queue": "q"}]}, "unknown top-level key(s): queue"),
])
def test_model_errors_name_the_key(change, message):
    with pytest.raises(ModelError, match=None) as info:
        model_from_dict(change)
    assert message in str(info.value)


def test_cli_rejects_a_bad_model_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "model.yaml"
    bad.write_text("queues:\n  - queue: q\n    acw: {distribution: exponential}\n")
    assert cli.main(["simulate", "--model", str(bad), "--output", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "queues[0].acw: a exponential distribution takes exactly mean" in err and "Traceback" not in err
    assert cli.main(["simulate", "--duplicates", "1.5", "--output", str(tmp_path / "x.jsonl")]) == 2


def test_curves_as_lists_or_step_mappings():
    m = load_model_text("queues:\n  - queue: q\n    daily_curve: {22: 0.5, 8: 2}\n")
    curve = m.queues[0].daily_curve
    assert curve[:8] == (0.5,) * 8 and curve[8:22] == (2.0,) * 14 and curve[22:] == (0.5, 0.5)
    m = load_model_text("defaults:\n  patience_seconds: null\nqueues:\n  - queue: q\n    daily_curve: [" +
                        ", ".join(str(h) for h in range(24)) + "]\n")
    assert m.queues[0].daily_curve[5] == 5 and m.queues[0].patience_seconds is None
