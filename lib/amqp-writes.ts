/**
 * amqplib writes every frame it has queued to the socket with its own `write` call: one system
 * call per publish, per ack, per Moleculer request and reply. Corking the socket while its
 * multiplexer drains the queue sends them in one `writev` instead. Measured on 2 cores: the bare
 * moleculer-web -> remote action hop over AMQP +20 %, outbox relay + consume +25-35 %; a profile of
 * the relay had spent 28 % of its CPU in those writes.
 *
 * amqplib is pinned (0.10.x, the version @moleculer/channels works with); the patch checks the
 * shape it relies on and leaves amqplib as it is when that shape is not there.
 */
import { createRequire } from "node:module";

interface Corkable {
	cork(): void;
	uncork(): void;
}

type Drain = (this: { out: Partial<Corkable> }) => void;

interface MuxPrototype {
	_readIncoming: Drain;
	__backplaneCorked?: true;
}

/** Applies the patch once per process; answers whether amqplib has it. */
export function coalesceAmqpWrites(): boolean {
	const require = createRequire(import.meta.url);
	const { Mux } = require("amqplib/lib/mux.js") as { Mux?: { prototype: MuxPrototype } };
	const proto = Mux?.prototype;
	if (!proto || typeof proto._readIncoming !== "function") return false;
	if (proto.__backplaneCorked) return true;
	const drain = proto._readIncoming;
	proto._readIncoming = function (this: ThisParameterType<Drain>) {
		const out = this.out;
		if (typeof out.cork !== "function" || typeof out.uncork !== "function") return drain.call(this);
		out.cork();
		try {
			drain.call(this);
		} finally {
			out.uncork();
		}
	};
	proto.__backplaneCorked = true;
	return true;
}
