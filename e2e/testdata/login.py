#!/usr/bin/python3
"""Log in to an XMPP server over plain TCP with SASL PLAIN (or X-TOKEN).

usage: login.py JID PASSWORD [HOST [PORT [MECH]]]
Exit status: 0 logged in, 1 refused, 2 error or timeout. A refusal prints
"failure: CONDITION" (the SASL failure condition).
"""
import asyncio, logging, sys
import slixmpp
from slixmpp.util.sasl import mechanisms

jid, pw = sys.argv[1], sys.argv[2]
host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
port = int(sys.argv[4]) if len(sys.argv) > 4 else 15222
mech = sys.argv[5] if len(sys.argv) > 5 else "PLAIN"


@mechanisms.sasl_mech(0)
class X_TOKEN(mechanisms.PLAIN):
    """mod_auth_token's mechanism: PLAIN's wire format under another name."""
    name = "X-TOKEN"


logging.basicConfig(level=logging.ERROR)
res = {"rc": 2}
x = slixmpp.ClientXMPP(jid, pw)
x["feature_mechanisms"].unencrypted_plain = True
x["feature_mechanisms"].use_mech = mech


def done(rc):
    if res["rc"] == 2:
        res["rc"] = rc
    x.disconnect()


x.add_event_handler("session_start", lambda e: done(0))
x.add_event_handler("failed_all_auth", lambda e: done(1))


def failed_auth(stanza):
    print("failure:", stanza["condition"], flush=True)  # the SASL condition
    done(1)


x.add_event_handler("failed_auth", failed_auth)
x.connect((host, port), use_ssl=False, force_starttls=False, disable_starttls=True)


async def wait():
    for _ in range(150):
        if res["rc"] != 2:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.2)


x.loop.run_until_complete(wait())
sys.exit(res["rc"])
