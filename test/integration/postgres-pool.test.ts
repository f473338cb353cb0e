/**
 * The PostgreSQL pool survives its connections being cut (a database restart ends every backend):
 * an idle client is reported, and a client held between two queries makes its holder's next
 * query fail instead of crashing the node with an unhandled 'error' event.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPgPool } from "../../lib/postgres.ts";
import { createTestDatabase } from "../support/infra.ts";

describe("createPgPool", () => {
	let url: string;
	let pool: pg.Pool;
	let admin: pg.Client;
	const lost: Error[] = [];
	const terminate = async (pid: number) => (await admin.query<{ ok: boolean }>("SELECT pg_terminate_backend($1) AS ok", [pid])).rows[0]!.ok;
	const backendPid = async (db: pg.Pool | pg.PoolClient) => (await db.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
	const until = async (cond: () => boolean) => {
		for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
	};

	beforeAll(async () => {
		url = await createTestDatabase();
		pool = createPgPool(url, "pool-test", (err) => lost.push(err));
		admin = new pg.Client({ connectionString: url });
		await admin.connect();
	});
	afterAll(async () => {
		await admin.end();
		await pool.end();
	});

	it("fails the next query of a checked-out client whose connection was cut, and keeps serving", async () => {
		const client = await pool.connect();
		await client.query("BEGIN");
		expect(await terminate(await backendPid(client))).toBe(true);
		// What the holder of a transaction sees once its connection is gone, without any crash.
		await new Promise((r) => setTimeout(r, 200));
		await expect(client.query("SELECT 1")).rejects.toThrow();
		client.release(true);
		expect((await pool.query<{ one: number }>("SELECT 1 AS one")).rows[0]!.one).toBe(1);
	});

	it("reports an idle client whose connection was cut", async () => {
		const pid = await backendPid(pool);
		const before = lost.length;
		expect(await terminate(pid)).toBe(true);
		await until(() => lost.length > before);
		expect(lost.length).toBe(before + 1);
		expect((await pool.query<{ one: number }>("SELECT 1 AS one")).rows[0]!.one).toBe(1);
	});
});
