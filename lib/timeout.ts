/**
 * `promise`, or a rejection with `message` once `ms` passed; the timer goes either way, and never
 * keeps a process alive on its own (a node shutting down does not wait for a watchdog).
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
	let timer: NodeJS.Timeout | undefined;
	try {
		return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms).unref()))]);
	} finally {
		clearTimeout(timer);
	}
}
