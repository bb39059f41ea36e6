"""Every documented endpoint of the demo, driven with gradio_client against a launched server."""

import json
import zipfile

import pytest

from tests.app_helpers import running_app

from gradio_client import Client
from gradio_client.exceptions import AppError

pytestmark = [pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),  # inside gradio's Dataframe
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]

ENDPOINTS = ["/run", "/step", "/execute", "/edit", "/regenerate", "/proceed", "/retry", "/stop", "/reset",
             "/camera", "/panels", "/history", "/camera_image", "/vqa", "/report"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    no_report = tmp_path_factory.mktemp("empty") / "results"
    with running_app(tmp_path_factory.mktemp("logs"), "--stream-cps", "0", "--pace", "0", "--report", str(no_report)) as (rt, url):
        yield rt, url


@pytest.fixture(scope="module")
def client(server):
    return Client(server[1], verbose=False)


def test_the_documented_endpoints_are_exactly_the_named_api(client):
    named = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert named == set(ENDPOINTS)


def test_report_without_a_report_says_how_to_make_one(client, server):
    source, tables, figures = client.predict(api_name="/report")
    assert source.startswith("No evaluation report yet") and "python -m evaluation.report" in source
    assert (tables, figures) == ("", "")


def test_run_reset_camera_panels_history(client, server):
    rt, _ = server
    status, *_ = client.predict(api_name="/reset")
    out = client.predict("recoge la zanahoria", api_name="/run")
    status, subtasks, stream, commands, validator, plot, *_ = out
    assert "Success" in status or "Not completed" in status
    assert "reach for the carrot" in subtasks
    assert "Actions" in stream and "move" in stream
    assert "cmds" in commands and ("proceed" in validator or "retry" in validator)
    assert plot["type"] == "plotly" and "1. reach for the carrot" in plot["plot"]
    image, state = client.predict(api_name="/camera")
    assert image.endswith((".jpeg", ".jpg")) and "end effector" in state
    panels = client.predict(api_name="/panels")
    assert len(panels) >= 6
    table, files = client.predict(api_name="/history")
    assert table["data"][0][1] == "recoge la zanahoria"
    assert files and files[0].endswith(".zip")  # the episode's log folder, zipped
    with zipfile.ZipFile(files[0]) as z:
        names = z.namelist()
        assert "episode.jsonl" in names and any(n.startswith("images/") and n.endswith(".png") for n in names)
        log = [json.loads(line) for line in z.read("episode.jsonl").decode().splitlines()]
    assert log[0]["type"] == "EpisodeStarted" and log[0]["instruction"] == "recoge la zanahoria"
    assert log[-1]["type"] == "EpisodeDone"
    assert client.predict(api_name="/camera_image").endswith((".webp", ".png", ".jpeg", ".jpg"))


def test_stop_is_answered_while_an_episode_runs(client, server):
    rt, _ = server
    client.predict(api_name="/reset")
    rt.robot.step_s = 0.1
    try:
        job = client.submit("pick up the carrot", api_name="/run")
        from app.runtime import wait_until

        assert wait_until(lambda: rt.view is not None and len(rt.view.commands) >= 1, 30)
        out = client.predict(api_name="/stop")
        assert "stopped" in out[-1]
        final = job.result(timeout=30)
        assert "e-stop" in final[0]
    finally:
        rt.robot.step_s = 0.0


def test_step_through_endpoints(client, server):
    rt, _ = server
    client.predict(api_name="/reset")
    out = client.predict("pick up the carrot", api_name="/step")
    assert "waiting for you" in out[0]
    out = client.predict(api_name="/regenerate")
    assert "waiting for you" in out[0]
    out = client.predict("[[move up 1.0 cm]]", api_name="/edit")
    assert "+1.0" in out[3]  # the edited block ran
    out = client.predict(api_name="/execute")
    assert "waiting for you" in out[0] or "Success" in out[0] or "Not completed" in out[0]
    client.predict(api_name="/stop")


def test_manual_verdict_and_vqa_explain_themselves(client):
    assert "not waiting for a verdict" in client.predict(api_name="/proceed")[-1] or \
        "no episode" in client.predict(api_name="/proceed")[-1]
    assert "no episode" in client.predict(api_name="/retry")[-1] or "not waiting" in client.predict(api_name="/retry")[-1]
    with pytest.raises(AppError, match="no language model"):
        client.predict(None, "what is on the table?", False, False, api_name="/vqa")


def test_a_second_client_is_told_the_robot_is_busy(client, server):
    rt, url = server
    client.predict(api_name="/reset")
    rt.robot.step_s = 0.1
    try:
        job = client.submit("pick up the carrot", api_name="/run")
        from app.runtime import wait_until

        assert wait_until(lambda: rt.running, 30)
        other = Client(url, verbose=False)
        out = other.predict("pick up the banana", api_name="/run")
        assert "busy" in out[-1] and "busy" in out[0]
        assert "busy" in other.predict(api_name="/reset")[-1]
        client.predict(api_name="/stop")
        job.result(timeout=30)
    finally:
        rt.robot.step_s = 0.0


def test_exposing_the_robot_needs_a_login(tmp_path):
    import os
    import subprocess
    import sys

    import httpx

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k != "VLM2VLA_AUTH"}
    for flags in (["--host", "0.0.0.0"], ["--share"]):
        r = subprocess.run([sys.executable, "-m", "app", *flags], cwd=root, env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode != 0
        assert r.stderr.strip().count("\n") == 0 and "--auth USER:PASS" in r.stderr, r.stderr

    with running_app(tmp_path, "--auth", "ann:pw") as (rt, url):
        assert httpx.get(url + "/camera.mjpg", timeout=10).status_code == 401
        assert httpx.get(url + "/config", timeout=10).status_code == 401
        with pytest.raises(Exception):
            Client(url, verbose=False)
        image, state = Client(url, auth=("ann", "pw"), verbose=False).predict(api_name="/camera")
        assert "end effector" in state
