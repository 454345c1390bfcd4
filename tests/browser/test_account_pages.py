"""The account's own pages in a real browser: change the password, delete the account."""

from __future__ import annotations

import pytest

from tests.service.conftest import LiveServer

pytestmark = pytest.mark.browser


@pytest.fixture
def server(settings, tmp_path):
    server = LiveServer(settings, tmp_path / "server.log").start()
    yield server
    server.stop()


def _sign_in(page, url: str, name: str, password: str) -> None:
    page.goto(url + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Sign in')")


@pytest.mark.slow
def test_change_password_then_delete_the_account(server, browser, shoot):
    assert server.cli("user", "create", "alice", input="password123\n").returncode == 0
    ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _sign_in(page, server.url, "alice", "password123")
    page.wait_for_url("**/jobs")

    page.goto(server.url + "/account")
    shoot(page, "20-account")
    page.click("a:has-text('Change password')")
    page.wait_for_url("**/account/password")
    shoot(page, "21-password")
    page.fill("input[name=current_password]", "not-my-password")
    page.fill("input[name=new_password]", "correct horse")
    page.fill("input[name=new_password2]", "correct horse")
    page.click("button:has-text('Change password')")
    assert "The password is wrong." in page.locator(".notice.error[role=alert]").inner_text()
    shoot(page, "22-password-wrong")
    page.fill("input[name=current_password]", "password123")
    page.fill("input[name=new_password]", "correct horse")
    page.fill("input[name=new_password2]", "correct horse")
    page.click("button:has-text('Change password')")
    page.wait_for_url("**/account?done=password")
    assert "Your password was changed" in page.locator(".notice.ok").inner_text()

    # Another browser signed in with the new password; the first deletes the account.
    other = browser.new_context().new_page()
    _sign_in(other, server.url, "alice", "correct horse")
    other.wait_for_url("**/jobs")
    page.click("a:has-text('Delete account')")
    page.wait_for_url("**/account/delete")
    shoot(page, "23-delete-account")
    page.fill("input[name=password]", "password123")  # the old one
    page.click("button:has-text('Delete my account')")
    assert "The password is wrong." in page.locator(".notice.error[role=alert]").inner_text()
    page.fill("input[name=password]", "correct horse")
    page.click("button:has-text('Delete my account')")
    page.wait_for_selector("h1:has-text('Account deleted')")
    shoot(page, "24-account-deleted")
    assert page.locator("a:has-text('Sign in')").count() == 1  # signed out here
    other.goto(server.url + "/jobs")
    assert "/login" in other.url  # and everywhere else
    _sign_in(page, server.url, "alice", "correct horse")
    assert "Wrong user name or password." in page.locator(".notice.error[role=alert]").inner_text()
    assert not errors, errors
    ctx.close()
