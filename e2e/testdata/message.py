#!/usr/bin/python3
"""Log in over plain TCP with SASL PLAIN, then send a message or read one's
own offline messages.

usage: message.py JID PASSWORD PORT send TO BODY
       message.py JID PASSWORD PORT receive
send: sends BODY to TO, waits for an error back, and prints
"error: CONDITION" for each bounce, then "done".
receive: sends its initial presence (offline messages come after it),
prints "body: BODY" for each message that arrives, then "done".
Exit status: 0 logged in, 1 refused, 2 error or timeout.
"""
import asyncio, logging, sys
import slixmpp

jid, pw, port, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
logging.basicConfig(level=logging.ERROR)
res = {"rc": 2}
x = slixmpp.ClientXMPP(jid, pw)
x["feature_mechanisms"].unencrypted_plain = True
x["feature_mechanisms"].use_mech = "PLAIN"


def message(msg):
    if msg["type"] == "error":
        if msg["id"] not in res.setdefault("errors", set()):
            res["errors"].add(msg["id"])
            print("error:", msg["error"]["condition"], flush=True)
    elif msg["body"]:
        print("body:", msg["body"], flush=True)


def started(_):
    if mode == "send":
        x.send_message(mto=sys.argv[5], mbody=sys.argv[6], mtype="chat")
    else:
        x.send_presence()
    res["rc"] = 0


def refused(_):
    res["rc"] = 1


x.add_event_handler("message", message)
x.add_event_handler("message_error", message)
x.add_event_handler("session_start", started)
x.add_event_handler("failed_all_auth", refused)
x.connect(("127.0.0.1", port), use_ssl=False, force_starttls=False, disable_starttls=True)


async def wait():
    for _ in range(150):
        if res["rc"] != 2:
            break
        await asyncio.sleep(0.1)
    if res["rc"] == 0:
        await asyncio.sleep(1.5)  # bounces and offline messages come within
    print("done", flush=True)
    x.disconnect()
    await asyncio.sleep(0.2)


x.loop.run_until_complete(wait())
sys.exit(res["rc"])
