/** `promise`, or a rejection with `message` once `ms` passed; the timer goes either way. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
	let timer: NodeJS.Timeout | undefined;
	try {
		return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]);
	} finally {
		clearTimeout(timer);
	}
}
