/**
 * The relay row's baseline in a process of its own: raw amqplib exactly as published, without the
 * write coalescing our nodes apply (lib/amqp-writes.ts), which the bench process has once it has
 * built broker options. `node bench/raw-amqp.ts NAMESPACE EVENTS` prints messages per second.
 */
import { rawAmqpRate } from "./events.ts";

const [namespace, events] = process.argv.slice(2);
process.stdout.write(`${await rawAmqpRate(process.env.RABBITMQ_URL!, namespace!, Number(events))}\n`);
