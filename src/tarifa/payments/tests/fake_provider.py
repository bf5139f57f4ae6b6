"""A tiny card provider speaking the reference protocol, for end-to-end tests over loopback.

It serves the hosted checkout page, takes the "card" on confirm, sends the signed webhook
to the merchant's notify_url (our live server), redirects the customer back, and charges
stored cards once per order.
"""

import html
import itertools
import json
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tarifa.payments.gateways.reference import SIGNATURE_HEADER, TIMESTAMP_HEADER, canonical_query, sign, verify


class FakeProvider:
    def __init__(self, secret: str):
        self.secret = secret
        self.orders = {}  # order id -> checkout params
        self.webhooks = []  # (status, body) of each webhook call
        self.charges = {}  # order -> answer (one charge per order)
        self.charge_calls = 0
        self._ids = itertools.count(1)
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body=b"", content_type="text/html; charset=utf-8", headers=None):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/checkout":
                    return self._send(404, b"not found")
                params = dict(urllib.parse.parse_qsl(url.query))
                try:
                    verify(provider.secret, params.get("ts", ""), canonical_query(params), params.get("sig", ""))
                except Exception as exc:  # the merchant's link is forged or stale
                    return self._send(400, f"bad signature: {exc}".encode())
                provider.orders[params["order"]] = params
                page = (f"<html><body><h1>Pay {html.escape(params['amount'])} {html.escape(params['currency'])}</h1>"
                        f"<form method='post' action='/checkout/confirm'>"
                        f"<input name='order' value='{html.escape(params['order'])}'>"
                        f"<input name='card' value='4242424242424242'><button>Pay</button></form></body></html>")
                return self._send(200, page.encode())

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path == "/checkout/confirm":
                    form = dict(urllib.parse.parse_qsl(raw.decode()))
                    params = provider.orders[form["order"]]
                    declined = form.get("card", "").startswith("4000")
                    event = {"event": "payment.failed" if declined else "payment.succeeded", "order": form["order"],
                             "txn_id": f"PRV-{next(provider._ids)}", "amount": params["amount"],
                             "currency": params["currency"], "reason": "card declined" if declined else ""}
                    if params.get("save_card") == "1" and not declined:
                        event.update(card_token=f"tok_{form['order'][:8]}", card_label="VISA •••• 4242")
                    provider.send_webhook(params["notify_url"], event)
                    return self._send(303, headers={"Location": params["return_url"]})
                if self.path == "/api/charges":
                    try:
                        verify(provider.secret, self.headers.get(TIMESTAMP_HEADER, ""), raw,
                               self.headers.get(SIGNATURE_HEADER, ""))
                    except Exception:
                        return self._send(401, b'{"status": "unauthorized"}', "application/json")
                    provider.charge_calls += 1
                    body = json.loads(raw)
                    answer = provider.charges.setdefault(body["order"], {
                        "status": "succeeded", "txn_id": f"CHG-{next(provider._ids)}", "amount": body["amount"]})
                    return self._send(200, json.dumps(answer).encode(), "application/json")
                return self._send(404, b"not found")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def send_webhook(self, url, event, *, secret=None, ts=None):
        body = json.dumps(event).encode()
        ts = ts or str(int(time.time()))
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", TIMESTAMP_HEADER: ts,
            SIGNATURE_HEADER: f"sha256={sign(secret or self.secret, ts, body)}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                result = (response.status, json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            result = (exc.code, json.loads(exc.read()))
        self.webhooks.append(result)
        return result

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
