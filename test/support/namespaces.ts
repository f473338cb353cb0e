/**
 * The Moleculer namespaces a test file used (testEnv records them). RabbitMQ is shared by every
 * run on the machine, and durable event queues never expire by themselves: the setup file
 * `leave-no-queues.ts` deletes these namespaces' queues and exchanges when the file is done.
 */
export const namespacesInUse = new Set<string>();
