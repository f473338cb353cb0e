/** A billing database of its own on the MongoDB-wire server: indexes made, plans seeded; dropped by `close`. */
import { MongoClient } from "mongodb";
import type { Db } from "mongodb";
import { seedPlans } from "../../services/billing/plans.ts";
import { ensureIndexes } from "../../services/billing/store.ts";
import { testEnv, uniqueId } from "./infra.ts";

export async function openBillingDb(prefix: string, seededAt: Date): Promise<{ db: Db; close(): Promise<void> }> {
	const mongo = new MongoClient(testEnv(uniqueId(prefix)).MONGO_URL!, { retryWrites: false });
	const db = mongo.db();
	await ensureIndexes(db);
	await seedPlans(db, seededAt);
	return {
		db,
		async close() {
			await db.dropDatabase().catch(() => undefined);
			await mongo.close();
		},
	};
}
