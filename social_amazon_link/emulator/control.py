"""The test-control surface under ``/_emulator/``: JSON in, JSON out.

Tests (and :class:`~social_amazon_link.emulator.client.LWAEmulator`) use it to
seed identities and clients, mint tokens as the LWA mobile SDK would hand them
to an app, expire tokens, queue faults and read counters. Bad input is
``400 {"error": "invalid_request", "message": ...}``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from .state import (
    EmulatorState,
    InvalidInput,
    parse_client,
    parse_expire,
    parse_fault,
    parse_identity,
    parse_mint,
)

__all__ = ["control_blueprint"]


def _body() -> Any:
    # force: a client that forgets the JSON content type still gets checked,
    # not a confusing "missing field".
    data = request.get_json(force=True, silent=True)
    if data is None:
        raise InvalidInput("the body must be a JSON object")
    return data


def control_blueprint(state: EmulatorState) -> Blueprint:
    """The ``/_emulator`` routes over ``state``."""
    bp = Blueprint("lwa_emulator_control", __name__, url_prefix="/_emulator")

    @bp.errorhandler(InvalidInput)
    def invalid_input(error: InvalidInput) -> tuple[Response, int]:
        return jsonify(error="invalid_request", message=str(error)), 400

    @bp.post("/identities")
    def put_identity() -> Response:
        """Add or update an identity: updating its email is Amazon's user changing it."""
        return jsonify(state.put_identity(parse_identity(_body())).as_dict())

    @bp.post("/clients")
    def put_client() -> Response:
        return jsonify(state.put_client(parse_client(_body())).as_dict())

    @bp.post("/tokens")
    def mint_token() -> Response:
        """An access token for any client id, as the LWA SDK hands one to an app."""
        client_id, user_id, scope, expires_in = parse_mint(_body())
        if state.identity(user_id) is None:
            raise InvalidInput(f"no identity {user_id}: add it first")
        token = state.issue_access_token(client_id, user_id, scope, expires_in)
        return jsonify(access_token=token.value, token_type="bearer", expires_in=expires_in)

    @bp.post("/tokens/expire")
    def expire_tokens() -> Response:
        access_token, user_id = parse_expire(_body())
        return jsonify(expired=state.expire_tokens(access_token=access_token, user_id=user_id))

    @bp.post("/faults")
    def add_fault() -> Response:
        fault = parse_fault(_body())
        state.add_fault(fault)
        return jsonify(fault.as_dict())

    @bp.delete("/faults")
    def clear_faults() -> Response:
        return jsonify(cleared=state.clear_faults())

    @bp.get("/stats")
    def stats() -> Response:
        return jsonify(state.stats())

    @bp.post("/reset")
    def reset() -> Response:
        state.reset()
        return jsonify(state.stats())

    return bp
