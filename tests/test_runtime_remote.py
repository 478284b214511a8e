"""Using the chat server from another machine: https with a cached self-signed certificate (or a
user's cert.pem/key.pem), the slot queue (place shown, bounded length and wait), per-session
sampling asked for in the query string, and a favicon instead of a 404."""

from __future__ import annotations

import asyncio
import json
import ssl
import stat

import aiohttp
import pytest

from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.runtime import tls
from jmoshi_augment.runtime.protocol import MessageKind
from jmoshi_augment.runtime.server import BUSY_CLOSE_CODE, ServerOptions
from runtime_helpers import handshake, running_server


def run(coro):
    async def bounded():
        async with asyncio.timeout(120):
            return await coro
    return asyncio.run(bounded())


def test_self_signed_certificate_is_made_for_the_names_cached_and_serves_wss(tmp_path, monkeypatch):
    from cryptography import x509

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cert = tls.resolve(tls.SELF_SIGNED, "0.0.0.0", ("chat.test",))
    assert cert.cert.parent.parent == tmp_path / "cache" / "jmoshi-augment" / "tls"
    assert stat.S_IMODE(cert.key.stat().st_mode) == 0o600
    parsed = x509.load_pem_x509_certificate(cert.cert.read_bytes())
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"chat.test", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
    assert "0.0.0.0" not in cert.names and "127.0.0.1" in cert.names
    again = tls.resolve(tls.SELF_SIGNED, "0.0.0.0", ("chat.test",))
    assert again.fingerprint == cert.fingerprint  # reused: the browser's exception still holds
    assert tls.resolve(tls.SELF_SIGNED, "0.0.0.0", ("other.test",)).fingerprint != cert.fingerprint

    client = ssl.create_default_context(cafile=str(cert.cert))  # trusts exactly this certificate

    async def main():
        async with running_server(ServerOptions(opus_workers=0), ssl_context=tls.context(cert)) as (http, url, _, _):
            assert url.startswith("https://")
            status = await http.get(url + "/api/status", ssl=client)
            assert status.status == 200
            ws = await http.ws_connect(url.replace("https", "wss") + "/api/chat", ssl=client)
            await handshake(ws)
            await ws.close()
            with pytest.raises(aiohttp.ClientConnectorCertificateError):  # not trusted without it
                await http.get(url + "/api/status")
    run(main())


def test_a_certificate_folder_must_hold_cert_and_key(tmp_path):
    with pytest.raises(JmoshiError, match="cert.pem not found"):
        tls.resolve(str(tmp_path), "127.0.0.1")
    cert_pem, key_pem = tls.make_self_signed(("localhost",))
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    with pytest.raises(JmoshiError, match="key.pem not found"):
        tls.resolve(str(tmp_path), "127.0.0.1")
    (tmp_path / "key.pem").write_bytes(tls.make_self_signed(("localhost",))[1])  # not this cert's key
    with pytest.raises(JmoshiError, match="cannot use"):
        tls.context(tls.resolve(str(tmp_path), "127.0.0.1"))
    (tmp_path / "key.pem").write_bytes(key_pem)
    assert tls.context(tls.resolve(str(tmp_path), "127.0.0.1")) is not None


async def _notice(ws) -> dict:
    msg = await asyncio.wait_for(ws.receive(), 30)
    assert msg.type == aiohttp.WSMsgType.BINARY and msg.data[0] == MessageKind.METADATA, msg
    return json.loads(msg.data[1:])


async def _busy(ws) -> str:
    msg = await asyncio.wait_for(ws.receive(), 30)
    assert msg.data[0] == MessageKind.ERROR
    assert (await ws.receive()).type == aiohttp.WSMsgType.CLOSE and ws.close_code == BUSY_CLOSE_CODE
    return msg.data[1:].decode()


def test_queue_shows_the_place_admits_in_order_and_is_bounded():
    async def main():
        opts = ServerOptions(opus_workers=0, queue=2, queue_wait_s=1.5)
        async with running_server(opts, slots=1) as (http, url, engine, _):
            a = await http.ws_connect(url + "/api/chat")
            await handshake(a)
            b = await http.ws_connect(url + "/api/chat")
            assert (await _notice(b))["place"] == 1
            c = await http.ws_connect(url + "/api/chat")
            notice = await _notice(c)
            assert notice["place"] == 2 and notice["waiting"] == 2 and "number 2 in the queue" in notice["message"]
            d = await http.ws_connect(url + "/api/chat")  # the queue is full: busy at once
            assert "already waiting" in await _busy(d)
            status = await (await http.get(url + "/api/status")).json()
            assert status["waiting"] == 2 and status["queue"] == 2 and status["active"] == 1
            await a.close()  # the slot frees: b (first in line) gets it, c moves up
            await handshake(b)
            assert (await _notice(c))["place"] == 1
            assert engine.active_sessions == 1
            started = asyncio.get_running_loop().time()
            assert "no slot freed within 2 s" in await _busy(c)  # b keeps the slot past c's wait
            assert 1.0 < asyncio.get_running_loop().time() - started < 5
            e = await http.ws_connect(url + "/api/chat")  # a waiter that leaves frees its place
            assert (await _notice(e))["place"] == 1
            await e.close()
            for _ in range(100):
                if (await (await http.get(url + "/api/status")).json())["waiting"] == 0:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the queue kept a client that left")
            await b.close()
    run(main())


def test_a_waiting_client_is_told_1001_when_the_server_shuts_down():
    async def main():
        async with running_server(ServerOptions(opus_workers=0, queue=1), slots=1) as (http, url, _, server):
            a = await http.ws_connect(url + "/api/chat")
            await handshake(a)
            b = await http.ws_connect(url + "/api/chat")
            assert (await _notice(b))["place"] == 1
            await server._on_shutdown(None)  # what Ctrl-C / SIGTERM do first
            for ws in (a, b):
                while (msg := await asyncio.wait_for(ws.receive(), 10)).type == aiohttp.WSMsgType.BINARY:
                    pass
                assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001
    run(main())


def test_per_session_sampling_is_clamped_and_reported_and_favicon_is_served():
    async def main():
        async with running_server(ServerOptions(opus_workers=0)) as (http, url, engine, _):
            favicon = await http.get(url + "/favicon.ico")
            assert favicon.status == 200 and favicon.content_type == "image/svg+xml"
            status = await (await http.get(url + "/api/status")).json()
            assert status["sampling_bounds"] == {"temp": [0.2, 1.2], "top_k": [10, 500]}
            assert status["sampling"]["top_k"] == engine.sampling.top_k
            ws = await http.ws_connect(url + "/api/chat?audio_topk=900&text_temperature=0.5&audio_temperature=x")
            await handshake(ws)
            notice = await _notice(ws)
            assert notice["event"] == "sampling"
            assert notice["sampling"]["top_k"] == 500 and notice["sampling"]["temp_text"] == 0.5
            assert notice["sampling"]["temp"] == engine.sampling.temp  # "x" was ignored
            assert "audio_topk 900 -> 500" in notice["message"]
            await ws.close()
    run(main())


def test_cli_refuses_a_certificate_folder_without_key_in_one_line_before_loading_the_model(tmp_path):
    from test_bad_input import assert_one_line, cli

    (tmp_path / "cert.pem").write_bytes(tls.make_self_signed(("localhost",))[0])
    res = cli("chat", str(tmp_path / "no-such-model"), "--device", "cpu", "--ssl", str(tmp_path))
    assert_one_line(res, "key.pem not found")
