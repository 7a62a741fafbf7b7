"""The test helpers themselves: a missing tool skips a test on a workstation and fails it in CI."""
import pytest

from conftest import import_or_skip, skip_or_fail


def test_a_missing_tool_skips_here_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="^qemu not installed$"):
        skip_or_fail("qemu not installed")
    with pytest.raises(pytest.skip.Exception, match="no_such_package_here is not installed"):
        import_or_skip("no_such_package_here")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="^qemu not installed; CI is set, where setup.sh must install it$"):
        skip_or_fail("qemu not installed")
    with pytest.raises(pytest.fail.Exception, match="no_such_package_here is not installed"):
        import_or_skip("no_such_package_here")
    assert import_or_skip("json").dumps([1]) == "[1]"
