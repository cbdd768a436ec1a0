#!/usr/bin/python3
"""Log in, then measure XMPP ping round trips to the server (XEP-0199).

usage: ping.py JID PASSWORD HOST PORT SECONDS

Logs in with SASL PLAIN over plain TCP and prints "ready". Then waits for a
line on stdin, pings the server back to back for SECONDS seconds, prints
each round trip in milliseconds on its own line, then "done", and exits 0.
A ping without an answer within 5 s prints "lost". Exit status 1: login
refused; 2: error or timeout.

Run it in its own process: the client's own event loop must not be busy
with anything but the pings it measures.
"""
import asyncio, logging, sys, time
import slixmpp

jid, pw, host, port, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])

logging.basicConfig(level=logging.ERROR)
x = slixmpp.ClientXMPP(jid, pw)
x.register_plugin("xep_0199")
x["feature_mechanisms"].unencrypted_plain = True
x["feature_mechanisms"].use_mech = "PLAIN"
state = {"rc": None}
started = asyncio.Event()


def session_start(_):
    started.set()


def failed(_):
    state["rc"] = 1
    started.set()


x.add_event_handler("session_start", session_start)
x.add_event_handler("failed_all_auth", failed)
x.add_event_handler("failed_auth", failed)
x.connect((host, port), use_ssl=False, force_starttls=False, disable_starttls=True)


async def main():
    try:
        await asyncio.wait_for(started.wait(), 15)
    except asyncio.TimeoutError:
        return 2
    if state["rc"] is not None:
        return state["rc"]
    print("ready", flush=True)
    await x.loop.run_in_executor(None, sys.stdin.readline)
    server = slixmpp.JID(jid).domain
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            await x.plugin["xep_0199"].send_ping(server, timeout=5)
        except Exception:
            print("lost", flush=True)
            continue
        print("%.3f" % ((time.monotonic() - t0) * 1000), flush=True)
    print("done", flush=True)
    x.disconnect()
    await asyncio.sleep(0.2)
    return 0


sys.exit(x.loop.run_until_complete(main()))
