"""Client calls for account security: second factors, OAuth authorizations, app transfers, collaborators
and operator actions. A ``two_factor`` answer is retried once with the code ``prompt`` returns, in the
``Heroku-Two-Factor-Code`` header, as the Heroku CLI does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from dockyard.client.http import ApiClient, error_from_response
from dockyard.errors import ApiError

Json = dict[str, Any]
OK = (200, 201, 202, 204)


def _segment(value: str) -> str:
    return quote(value, safe="")


class SecurityClient:
    def __init__(self, api: ApiClient, prompt: Callable[[], str] | None = None) -> None:
        self.api = api
        self.prompt = prompt

    def call(self, method: str, path: str, body: Json | None = None) -> Any:
        response = self.api.request(method, path, json=body, ok=(*OK, 403))
        if response.status_code == 403:
            data = response.json() if response.content else {}
            if not (isinstance(data, dict) and data.get("id") == "two_factor" and self.prompt):
                raise error_from_response(response)
            code = self.prompt()
            response = self.api.request(
                method, path, json=body, headers={"Heroku-Two-Factor-Code": code}
            )
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(
                f"the API answered {method} {path} with a body that is not JSON",
                error_id="bad_response",
                status=response.status_code,
            ) from exc

    # -- second factors ---------------------------------------------------------------------------

    def two_factor(self) -> Json:
        result: Json = self.call("GET", "/account/two-factor")
        return result

    def begin_totp(self) -> Json:
        result: Json = self.call("POST", "/account/two-factor/totp")
        return result

    def confirm_totp(self, code: str) -> Json:
        result: Json = self.call("PUT", "/account/two-factor/totp", {"code": code})
        return result

    def disable_totp(self) -> Json:
        result: Json = self.call("DELETE", "/account/two-factor/totp")
        return result

    def recovery_codes(self) -> list[str]:
        codes: list[str] = self.call("POST", "/account/recovery-codes")["recovery_codes"]
        return codes

    # -- authorizations ---------------------------------------------------------------------------

    def authorizations(self) -> list[Json]:
        found: list[Json] = self.call("GET", "/oauth/authorizations")
        return found

    def authorization(self, ref: str) -> Json:
        result: Json = self.call("GET", f"/oauth/authorizations/{_segment(ref)}")
        return result

    def create_authorization(
        self, scopes: list[str], description: str, expires_in: int | None
    ) -> Json:
        body: Json = {"scope": scopes, "description": description}
        if expires_in is not None:
            body["expires_in"] = expires_in
        result: Json = self.call("POST", "/oauth/authorizations", body)
        return result

    def revoke_authorization(self, ref: str) -> Json:
        result: Json = self.call("DELETE", f"/oauth/authorizations/{_segment(ref)}")
        return result

    # -- apps -------------------------------------------------------------------------------------

    def transfer(self, app: str, recipient: str, confirm: str) -> Json:
        body = {"app": app, "recipient": recipient, "confirm": confirm}
        result: Json = self.call("POST", "/account/app-transfers", body)
        return result

    def transfers(self) -> list[Json]:
        found: list[Json] = self.call("GET", "/account/app-transfers")
        return found

    def answer_transfer(self, transfer_id: str, state: str) -> Json:
        path = f"/account/app-transfers/{_segment(transfer_id)}"
        result: Json = self.call("PATCH", path, {"state": state})
        return result

    def add_collaborator(self, app: str, user: str) -> Json:
        path = f"/apps/{_segment(app)}/collaborators"
        result: Json = self.call("POST", path, {"user": user})
        return result

    def remove_collaborator(self, app: str, user: str) -> Json:
        path = f"/apps/{_segment(app)}/collaborators/{_segment(user)}"
        result: Json = self.call("DELETE", path)
        return result

    # -- operators --------------------------------------------------------------------------------

    def deactivate(self, account: str) -> Json:
        path = f"/admin/accounts/{_segment(account)}/actions/deactivate"
        result: Json = self.call("POST", path)
        return result
