"""Checklist item 2 (§7.3 start-up guard)."""

from __future__ import annotations

import pytest

from relay_compat import DEFAULT_CONFIG, PLACEHOLDER_SECRET, ServerConfig, make_server

CASES = {
    "placeholder-secret": (DEFAULT_CONFIG.with_env(PULSAR_JWT_SECRET_KEY=PLACEHOLDER_SECRET), "PULSAR_JWT_SECRET_KEY"),
    "secret-unset": (DEFAULT_CONFIG.with_env(PULSAR_JWT_SECRET_KEY=None), "PULSAR_JWT_SECRET_KEY"),
    "short-secret": (DEFAULT_CONFIG.with_env(PULSAR_JWT_SECRET_KEY="s" * 31), "PULSAR_JWT_SECRET_KEY"),
    "trusted-hosts-unset": (DEFAULT_CONFIG.with_env(PULSAR_TRUSTED_HOSTS=None), "PULSAR_TRUSTED_HOSTS"),
    "trusted-hosts-empty": (DEFAULT_CONFIG.with_env(PULSAR_TRUSTED_HOSTS="[]"), "PULSAR_TRUSTED_HOSTS"),
    "allowed-origins-unset": (DEFAULT_CONFIG.with_env(PULSAR_ALLOWED_ORIGINS=None), "PULSAR_ALLOWED_ORIGINS"),
    "admin-password-unset": (DEFAULT_CONFIG.with_env(PULSAR_BOOTSTRAP_ADMIN_PASSWORD=None), "PULSAR_BOOTSTRAP_ADMIN_PASSWORD"),
}


_RESULTS: dict[str, dict[str, tuple[int | None, str]]] = {}


def _guard_results(target: str, pool) -> dict[str, tuple[int | None, str]]:
    """Start one server per case at once (each is expected to exit), then collect exit codes and output."""
    if target not in _RESULTS:
        pool.ensure(target)
        servers = {case: make_server(target, config) for case, (config, _) in CASES.items()}
        try:
            for srv in servers.values():
                srv.expect_exit = True
                srv.spawn()
            results = {}
            for case, srv in servers.items():
                results[case] = (srv.wait_exit(40), srv.output())
        finally:
            for srv in servers.values():
                srv.stop()
                srv.cleanup()
        _RESULTS[target] = results
    return _RESULTS[target]


@pytest.mark.parametrize("case", list(CASES))
def test_item02_guard_refuses_to_start(target, pool, case):
    config, variable = CASES[case]
    code, output = _guard_results(target, pool)[case]
    assert code is not None, f"{target} did not exit with {config.label()}"
    assert code != 0, f"exit code 0\n{output[-3000:]}"
    assert variable in output, f"the output does not name {variable}:\n{output[-3000:]}"


def test_item02_insecure_defaults_bypass(make):
    """PULSAR_ALLOW_INSECURE_DEFAULTS bypasses the guard; an empty trusted-host list then rejects every request."""
    config: ServerConfig = DEFAULT_CONFIG.with_env(
        PULSAR_JWT_SECRET_KEY=PLACEHOLDER_SECRET, PULSAR_TRUSTED_HOSTS=None, PULSAR_ALLOW_INSECURE_DEFAULTS="true"
    )
    relay = make(config, private_=True)
    r = relay.get("/health")
    assert r.status_code == 400 and r.text == "Invalid host header"
    r = relay.get("/health", headers={"Host": "localhost"})
    assert r.status_code == 400 and r.text == "Invalid host header"
