"""Install the idle agent (bootstrap/idle_agent.py) on the machine over the kit's connection: its files in
~/.dsvm-kit/idle (0700; config, token and CA file 0600), then a systemd service where systemd runs and the
user may sudo (it survives reboots and `provision start`), else a detached process (setsid)."""

from __future__ import annotations

import contextlib
import json
import shlex
from pathlib import Path

from bootstrap.remote import Remote, expand

AGENT_DIR = "~/.dsvm-kit/idle"
UNIT = "dsvm-kit-idle.service"
_HERE = Path(__file__).parent
# The pid file may outlive its process (a deallocation kills everything): kill only a live agent, never a pid
# that a reboot gave to another program, and do not fail when there is none.
_STOP_DETACHED = 'pid=$(cat {d}/pid 2>/dev/null) && grep -qs agent.py /proc/"$pid"/cmdline && kill "$pid"; true'
_HAS_SYSTEMD = "command -v systemctl >/dev/null && [ -d /run/systemd/system ] && sudo -n true 2>/dev/null"


def unit_text(user: str, python: str, agent: str, config: str) -> str:
    template = (_HERE / UNIT).read_text()
    return template.format(user=user, python=python, agent=agent, config=config)


def install(remote: Remote, config: dict, jupyter_token: str, ca_pem: str | None) -> str:
    """Write the agent, its config and secrets, and (re)start it; returns how it runs: systemd or detached."""
    home_dir = expand(remote, AGENT_DIR)
    remote.run(f"mkdir -p {home_dir} && chmod 700 {home_dir}", step="idle agent directory")
    agent, config_path, token_file = f"{home_dir}/agent.py", f"{home_dir}/config.json", f"{home_dir}/jupyter-token"
    remote.write_text(agent, (_HERE / "idle_agent.py").read_text(), mode=0o600)
    remote.write_text(token_file, jupyter_token + "\n", mode=0o600)
    user = remote.run("id -un", step="user").stdout.strip()
    full = {**config, "user": user, "token_file": token_file, "state_dir": home_dir, "ca_bundle": None}
    if ca_pem:
        remote.write_text(f"{home_dir}/arm-ca.pem", ca_pem, mode=0o600)
        full["ca_bundle"] = f"{home_dir}/arm-ca.pem"
    remote.write_text(config_path, json.dumps(full, indent=1), mode=0o600)
    d = shlex.quote(home_dir)
    remote.run(f"rm -f {d}/stopped.json {d}/state.json; {_STOP_DETACHED.format(d=d)}", step="stop the old agent")
    if remote.run(_HAS_SYSTEMD, check=False).exit_code == 0:
        unit = unit_text(user, "/usr/bin/python3", agent, config_path)
        remote.write_text(f"{home_dir}/{UNIT}", unit, mode=0o644)
        remote.run(
            f"sudo -n install -m 644 {d}/{UNIT} /etc/systemd/system/{UNIT} && sudo -n systemctl daemon-reload "
            f"&& sudo -n systemctl enable {UNIT} && sudo -n systemctl restart {UNIT}",
            step="idle agent service",
        )
        return "systemd"
    remote.run(
        f"(setsid python3 {d}/agent.py {d}/config.json </dev/null >>{d}/agent.out 2>&1 & echo $! >{d}/pid)",
        step="idle agent",
    )
    return "detached"


def read_state(remote: Remote) -> dict:
    """What the agent last wrote, in one command: state.json (idle_s, checked_at, last_error) and stopped.json."""
    d = shlex.quote(expand(remote, AGENT_DIR))
    result = remote.run(f"for n in state stopped; do printf '%s ' $n; cat {d}/$n.json 2>/dev/null; echo; done")
    found = {}
    for line in result.stdout.splitlines():
        name, _, text = line.partition(" ")
        with contextlib.suppress(ValueError):
            if text.strip():
                found[name] = json.loads(text)
    return found
