/**
 * Moleculer's AMQP transporter, sending the packets a node addresses to one queue within one
 * event-loop turn as a single AMQP message.
 *
 * Why: RabbitMQ's cost is per message (route, enqueue, deliver, ack), and a request/reply between
 * two nodes is two messages and an ack. Under load the gateway sends many requests to the same node
 * in one turn, and that node answers many of them in one turn. Measured on 2 cores, bare
 * moleculer-web -> remote action: 5,000 -> 11,000 req/s, p99 29 -> 20 ms (docs/decisions/0005).
 *
 * Only packets with a target node go in batches (requests, responses, targeted events and
 * discovery replies), and only to nodes that announced they unpack them (node metadata), so a node
 * of an older version in the middle of a rolling update still gets one packet per message.
 * Broadcasts go out at once, after whatever is pending, so packets leave the channel in the order
 * they were sent. A batch of requests is acknowledged when every request in it is settled.
 */
import { Transporters } from "moleculer";

type InitArgs = Parameters<InstanceType<typeof Transporters.AMQP>["init"]>;

/** Node-metadata key a node sets when it unpacks batches; the value is the framing version. */
export const BATCH_CAPABILITY = "amqpBatch";
const FRAMING_VERSION = 1;
/** AMQP header marking a batch; its value is the number of packets in it. */
export const BATCH_HEADER = "x-backplane-batch";
/** A queue's pending packets go out at once when they reach either bound. */
const MAX_BATCH_PACKETS = 128;
const MAX_BATCH_BYTES = 256 * 1024;

/** Packets framed as a 4-byte big-endian length followed by the packet, one after the other. */
export function packBatch(packets: Buffer[]): Buffer {
	let total = 0;
	for (const packet of packets) total += 4 + packet.length;
	const batch = Buffer.allocUnsafe(total);
	let offset = 0;
	for (const packet of packets) {
		batch.writeUInt32BE(packet.length, offset);
		packet.copy(batch, offset + 4);
		offset += 4 + packet.length;
	}
	return batch;
}

/** The packets of a batch (views into it); throws on a frame that runs past the end. */
export function unpackBatch(batch: Buffer): Buffer[] {
	const packets: Buffer[] = [];
	for (let offset = 0; offset < batch.length; ) {
		if (offset + 4 > batch.length) throw new Error(`truncated frame header at byte ${offset}`);
		const end = offset + 4 + batch.readUInt32BE(offset);
		if (end > batch.length) throw new Error(`frame at byte ${offset} runs past the end (${end} > ${batch.length})`);
		packets.push(batch.subarray(offset + 4, end));
		offset = end;
	}
	return packets;
}

interface AmqpMessage {
	content: Buffer;
	properties: { headers?: Record<string, unknown> };
}

/** What is used of amqplib's channel (Moleculer types it as any). */
interface AmqpChannel {
	sendToQueue(queue: string, content: Buffer, options?: object): boolean;
	ack(message: AmqpMessage): void;
}

interface Pending {
	packets: Buffer[];
	bytes: number;
}

export class BatchingAmqpTransporter extends Transporters.AMQP {
	private pending = new Map<string, Pending>();
	private flushScheduled = false;
	private readonly flushSoon = () => this.flush();

	override init(...args: InitArgs): void {
		super.init(...args);
		// The local node's metadata is this object; peers learn it from our INFO packet.
		(this.broker.metadata as Record<string, unknown>)[BATCH_CAPABILITY] = FRAMING_VERSION;
		if (this.broker.isMetricsEnabled()) {
			this.broker.metrics.register({ name: "transporter.batch.messages.total", type: "counter", description: "AMQP messages sent carrying more than one packet" });
			this.broker.metrics.register({ name: "transporter.batch.packets.total", type: "counter", description: "Packets sent inside those messages" });
		}
	}

	override send(topic: string, data: Buffer, meta: { packet: { target?: string | null } }): Promise<void> {
		const target = meta.packet.target;
		if (!this.channel || target == null || !this.unpacks(target)) {
			this.flush(); // keep the channel's order
			return super.send(topic, data, meta);
		}
		let queue = this.pending.get(topic);
		if (!queue) this.pending.set(topic, (queue = { packets: [], bytes: 0 }));
		queue.packets.push(data);
		queue.bytes += data.length;
		if (queue.packets.length >= MAX_BATCH_PACKETS || queue.bytes >= MAX_BATCH_BYTES) this.flush();
		else if (!this.flushScheduled) {
			this.flushScheduled = true;
			setImmediate(this.flushSoon);
		}
		return Promise.resolve();
	}

	override async disconnect(): Promise<void> {
		this.flush();
		return super.disconnect();
	}

	override _consumeCB(cmd: string, needAck = false): (message: AmqpMessage) => void | Promise<void> {
		const one = super._consumeCB(cmd, needAck);
		return (message) => {
			if (message.properties.headers?.[BATCH_HEADER] == null) return one(message);
			let packets: Buffer[];
			try {
				packets = unpackBatch(message.content);
			} catch (err) {
				// Not ours to redeliver: a malformed message would fail the same way again.
				this.logger.warn("Dropped a malformed packet batch.", { cmd, error: (err as Error).message });
				if (needAck) this.amqp?.ack(message);
				return;
			}
			const handled = packets.map((packet) => Promise.resolve(this.receive(cmd, packet)));
			if (!needAck) return;
			// Acknowledged once every packet is settled, never requeued: a redelivered batch would run
			// its packets that did succeed a second time. A failed request's caller times out instead.
			return Promise.allSettled(handled).then((results) => {
				const failed = results.filter((result) => result.status === "rejected").length;
				if (failed) this.logger.warn(`${failed} of ${packets.length} packets of a batch failed.`, { cmd });
				this.amqp?.ack(message);
			});
		};
	}

	private get amqp(): AmqpChannel | null {
		return this.channel as AmqpChannel | null;
	}

	private unpacks(nodeID: string): boolean {
		const metadata = this.broker.registry.nodes.get(nodeID)?.metadata as Record<string, unknown> | null | undefined;
		return metadata?.[BATCH_CAPABILITY] === FRAMING_VERSION;
	}

	private flush(): void {
		this.flushScheduled = false;
		if (this.pending.size === 0) return;
		const channel = this.amqp;
		for (const [topic, queue] of this.pending) {
			if (!channel) break;
			const [first] = queue.packets;
			if (queue.packets.length === 1 && first) {
				channel.sendToQueue(topic, first, this.opts.messageOptions);
				continue;
			}
			const options = { ...this.opts.messageOptions, headers: { ...(this.opts.messageOptions?.headers as object | undefined), [BATCH_HEADER]: queue.packets.length } };
			channel.sendToQueue(topic, packBatch(queue.packets), options);
			if (this.broker.isMetricsEnabled()) {
				this.broker.metrics.increment("transporter.batch.messages.total");
				this.broker.metrics.increment("transporter.batch.packets.total", undefined, queue.packets.length);
			}
		}
		this.pending.clear();
	}
}
