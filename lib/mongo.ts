/** MongoDB client (real MongoDB or any MongoDB-wire server such as FerretDB) with bounded waits. */
import { MongoClient } from "mongodb";

export function createMongoClient(url: string, appName: string): MongoClient {
	return new MongoClient(url, {
		appName,
		serverSelectionTimeoutMS: 3_000,
		connectTimeoutMS: 3_000,
		socketTimeoutMS: 15_000,
		maxPoolSize: 20,
		retryWrites: false, // FerretDB v1 has no retryable writes; writes are made idempotent instead.
	});
}
