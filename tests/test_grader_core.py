"""The machinery every grader shares: loading a student's code from anywhere, weight copying, short reports, and
time limits."""

import signal
import threading
import time

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from torch import nn

from ddpm_course.impl import ImplError
from graders.core import (
    DEFAULT_TIME_LIMIT_S,
    TIME_LIMIT_SCALE_ENV,
    GraderFailure,
    TimedOut,
    copy_weights,
    expect,
    expect_close,
    grader,
    load_impl,
)


def test_a_failure_shows_as_its_message_alone_in_ipython():
    lines = GraderFailure("step: wrong\n  expected: 1\n  got:      2")._render_traceback_()
    assert "step: wrong" in lines[0] and lines[1:] == ["  expected: 1", "  got:      2"]


def test_load_impl_takes_a_file_outside_the_repo(tmp_path):
    student = tmp_path / "elsewhere" / "my_part1.py"
    student.parent.mkdir()
    student.write_text(
        "from utils.engine.model import per_image\n\ndef linear_schedule(max_steps, min_noise=1e-4, max_noise=0.02):\n"
        "    import torch\n    return torch.linspace(min_noise, max_noise, max_steps)\n"
    )
    module = load_impl(str(student), 1)
    assert module.linear_schedule(3).shape == (3,)


def test_load_impl_says_what_it_accepts(tmp_path):
    with pytest.raises(ImplError, match="Give exercises, solutions, a folder, a .py file, a .ipynb notebook"):
        load_impl(str(tmp_path / "missing.py"), 1)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ImplError, match="expected a .py file or a .ipynb notebook"):
        load_impl(str(tmp_path / "notes.txt"), 1)


def test_notebook_loading_runs_definitions_only(tmp_path):
    cells = [
        new_code_cell("%matplotlib inline\nimport torch"),
        new_code_cell("def f(x):\n    return x + 1\nraise RuntimeError('training cell')"),
        new_markdown_cell("# prose"),
        new_code_cell("!pip install nothing\nclass C:\n    y = torch.ones(1)"),
    ]
    path = tmp_path / "work.ipynb"
    nbformat.write(new_notebook(cells=cells), path)
    module = load_impl(str(path), 1)
    assert module.f(1) == 2 and module.C.y.item() == 1.0


def test_copy_weights_by_order_and_clear_mismatch():
    class A(nn.Module):
        def __init__(self):
            super().__init__()
            self.first, self.second = nn.Linear(3, 4), nn.Linear(4, 2)

    class B(nn.Module):
        def __init__(self, bias=True):
            super().__init__()
            self.layers = nn.Sequential(nn.Linear(3, 4, bias=bias), nn.ReLU(), nn.Linear(4, 2, bias=bias))

    a, b = A(), B()
    copy_weights(a, b, "B")
    assert torch.equal(b.layers[0].weight, a.first.weight) and torch.equal(b.layers[2].bias, a.second.bias)
    with pytest.raises(GraderFailure, match="bias=False"):
        copy_weights(a, B(bias=False), "B")

    class SameNamesOtherOrder(nn.Module):  # matched by name: fine
        def __init__(self):
            super().__init__()
            self.second, self.first = nn.Linear(4, 2), nn.Linear(3, 4)

    swapped = SameNamesOtherOrder()
    copy_weights(a, swapped, "SameNamesOtherOrder")
    assert torch.equal(swapped.first.weight, a.first.weight)

    class OtherNamesOtherOrder(nn.Module):  # matched by order: the shapes cannot line up
        def __init__(self):
            super().__init__()
            self.out, self.hidden = nn.Linear(4, 2), nn.Linear(3, 4)

    with pytest.raises(GraderFailure, match="parameter #0 .* wrong shape"):
        copy_weights(a, OtherNamesOtherOrder(), "OtherNamesOtherOrder")


def test_copy_weights_takes_a_1x1_convolution_for_a_linear_layer():
    a = nn.Sequential(nn.Linear(3, 4))
    conv = nn.Sequential(nn.Conv2d(3, 4, 1))
    copy_weights(a, conv, "Conv")
    assert torch.equal(conv[0].weight, a[0].weight.reshape(4, 3, 1, 1)) and a[0].weight.shape == (4, 3)
    with pytest.raises(GraderFailure, match="Conv should be an nn.Module"):
        copy_weights(a, lambda x: x, "Conv")


def test_a_one_thread_grader_runs_on_one_thread_and_gives_the_threads_back():
    seen = []
    check = grader("one_thread_step", one_thread=True)(lambda obj: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    check(lambda: None)
    assert seen == [1] and torch.get_num_threads() == before


def test_expect_close_names_a_matching_mistake_and_rejects_nan():
    expected = torch.tensor([1.0, 2.0])
    with pytest.raises(GraderFailure, match="likely mistake: doubled"):
        expect_close(expected * 2, expected, "x", mistakes={"doubled": expected * 2})
    with pytest.raises(GraderFailure, match="NaN or inf"):
        expect_close(torch.tensor([1.0, float("nan")]), expected, "x")
    with pytest.raises(GraderFailure, match="wrong shape"):
        expect_close(torch.ones(3), expected, "x")


# --------------------------------------------------------------------------------------------------------------------
# Time limits: a step that never returns fails as timed out, and the next step runs as usual


def _endless_loop():
    n = 0
    while True:
        n += 1


def _sleeps():
    time.sleep(60)


def _slow_but_finite():
    total = 0
    for i in range(10**9):  # about a minute of pure Python: it would end, but far too late
        total += i
    return total


def _swallows_the_interruption():
    while True:
        try:
            time.sleep(60)
        except Exception:  # noqa: BLE001, S110 - the kind of blanket handler a student might write
            pass


@pytest.mark.parametrize(
    "student",
    [_endless_loop, _sleeps, _slow_but_finite, _swallows_the_interruption],
    ids=["endless-loop", "sleep", "slow-but-finite", "swallows-exceptions"],
)
def test_a_step_past_its_time_limit_fails_with_a_clear_message_and_the_next_step_runs(student):
    check_slow_step = grader("slow_step", time_limit=0.3)(lambda f: f())

    @grader("quick_step")
    def check_quick_step(f):
        expect(f() == 2, "f() should return 2")

    start = time.monotonic()
    with pytest.raises(TimedOut) as error:
        check_slow_step(student)
    assert time.monotonic() - start < 3
    message = str(error.value)
    assert message.startswith("slow_step: stopped after 0.3 s, this step's time limit")
    assert "a loop that never ends" in message and "far too large" in message and TIME_LIMIT_SCALE_ENV in message
    check_quick_step(lambda: 2)  # the timer is gone: the next step passes, and nothing fires later
    time.sleep(0.4)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_time_limit_has_one_default_and_scales_by_env(monkeypatch):
    check_default_step = grader("default_step")(lambda f: f())
    assert check_default_step.time_limit == DEFAULT_TIME_LIMIT_S
    monkeypatch.setenv(TIME_LIMIT_SCALE_ENV, str(0.2 / DEFAULT_TIME_LIMIT_S))
    with pytest.raises(TimedOut, match="stopped after 0.2 s"):
        check_default_step(_endless_loop)


def test_an_enclosing_timer_gets_its_time_back():
    check_inner_step = grader("inner_step", time_limit=5)(lambda f: f())
    previous = signal.signal(signal.SIGALRM, lambda *a: None)
    try:
        signal.setitimer(signal.ITIMER_REAL, 30)
        check_inner_step(lambda: None)
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 25 < remaining <= 30
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_off_the_main_thread_a_watchdog_thread_enforces_the_limit():
    check_threaded_step = grader("threaded_step", time_limit=0.3)(lambda f: f())
    check_threaded_error = grader("threaded_error", time_limit=5)(lambda f: f())

    outcome = {}

    def grade():
        for name, check, student in (
            ("slow", check_threaded_step, _sleeps),
            ("error", check_threaded_error, lambda: 1 / 0),
        ):
            try:
                check(student)
            except GraderFailure as e:
                outcome[name] = e

    worker = threading.Thread(target=grade)
    worker.start()
    worker.join(10)
    assert isinstance(outcome["slow"], TimedOut) and "threaded_step: stopped after 0.3 s" in str(outcome["slow"])
    assert "ZeroDivisionError" in str(outcome["error"]) and not isinstance(outcome["error"], TimedOut)


# --------------------------------------------------------------------------------------------------------------------
# The stand-in models, the inputs kept by the graders, and the meta device (graders.fixtures)


def test_a_stand_in_model_raises_what_the_unet_raises_and_the_crash_names_the_cause():
    from graders.fixtures import BIG_BETAS, LinearNoisePredictor, schedule_with

    model = LinearNoisePredictor(schedule_with(BIG_BETAS))
    x, t = torch.zeros(2, 1, 4, 4), torch.tensor([1, 6])
    assert model(x, t).shape == x.shape and model(x, t.int()).shape == x.shape
    cases = {
        "t passed to the model as a Python number": (x, 3),
        "images of another dtype than the model's weights": (x.double(), t),
        "t passed to the model as floats": (x, t.float()),
        "t is not one value per image": (x, torch.tensor(3)),
        "made on the CPU: pass device=": (x.to("meta"), t),
    }

    @grader("stand_in")
    def check(f):
        f()

    for cause, inputs in cases.items():
        with pytest.raises(GraderFailure, match=cause):
            check(lambda inputs=inputs: model(*inputs))


def test_unchanged_names_the_overwritten_argument_and_passes_what_was_left_alone():
    from graders.fixtures import BIG_BETAS, schedule_with, unchanged

    img, schedule = torch.ones(3, 2), schedule_with(BIG_BETAS)
    with unchanged("step", img=img, noise_schedule=schedule):
        _ = img * 2
    with pytest.raises(GraderFailure, match="step changed its argument `noise_schedule` in place"):
        with unchanged("step", img=img, noise_schedule=schedule):
            schedule.alpha_bars.mul_(2)
    with pytest.raises(GraderFailure, match="step changed its argument `img` in place"):
        with unchanged("step", img=img, noise_schedule=schedule):
            img[0] = 5


def test_run_on_meta_fails_a_tensor_made_on_the_cpu_and_records_what_it_cannot_judge():
    from graders.fixtures import NOT_ON_META, UNCHECKED_ON_META, run_on_meta

    x = torch.zeros(4, device="meta")
    assert run_on_meta(lambda: x + torch.randn_like(x), "step").device.type == "meta"
    with pytest.raises(GraderFailure, match="made on the CPU: pass device="):
        run_on_meta(lambda: x + torch.randn(4), "step")
    UNCHECKED_ON_META.clear()
    for reads in (lambda: x.sum().item(), lambda: x.tolist(), lambda: x.cpu(), lambda: x.to("cpu"), lambda: x.numpy()):
        assert run_on_meta(reads, "step") is NOT_ON_META
    assert len(UNCHECKED_ON_META) == 5 and UNCHECKED_ON_META[0].startswith("step: ")
    UNCHECKED_ON_META.clear()
