"""The baseline: a bare Flask JSON endpoint, served by the same gunicorn configuration."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/api/v1/client/entitlements/<reference_id>/<feature_key>")
def check(reference_id: str, feature_key: str):  # type: ignore[no-untyped-def]
    return jsonify(
        {
            "data": {
                "customerReferenceId": reference_id,
                "featureKey": feature_key,
                "isAllowed": True,
            }
        }
    )


@app.post("/api/v1/client/events")
def event():  # type: ignore[no-untyped-def]
    return jsonify({"data": {"recorded": True}}), 201
