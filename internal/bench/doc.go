// Package bench is `tokenauthd bench`: it measures helpers' and daemons'
// latency, throughput, memory and replay refusals with fresh tokens for
// hosts it configures itself, beside a do-nothing baseline
// (bench/nothing).
//
// It must never be imported by the daemon; it talks to what it measures
// only through protocol's client, as an XMPP server would.
package bench
