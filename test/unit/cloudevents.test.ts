import { describe, expect, it } from "vitest";
import { createCloudEvent, MalformedEventError, parseCloudEvent } from "../../lib/events/cloudevents.ts";

describe("CloudEvents envelope", () => {
	it("creates a 1.0 envelope that parses back", () => {
		const event = createCloudEvent({ type: "user.created", source: "/backplane/auth", subject: "u1", data: { userId: "u1" }, time: new Date("2026-01-02T03:04:05Z") });
		expect(event).toMatchObject({ specversion: "1.0", type: "user.created", source: "/backplane/auth", subject: "u1", time: "2026-01-02T03:04:05.000Z", datacontenttype: "application/json" });
		expect(event.id).toMatch(/^[0-9a-f-]{36}$/);
		expect(parseCloudEvent(JSON.parse(JSON.stringify(event)))).toEqual(event);
	});

	it("gives every event its own id", () => {
		const a = createCloudEvent({ type: "x.y", source: "/s", data: {} });
		const b = createCloudEvent({ type: "x.y", source: "/s", data: {} });
		expect(a.id).not.toBe(b.id);
	});

	it.each([
		["not an object", "user.created"],
		["wrong spec version", { specversion: "0.3", id: "1", source: "/s", type: "a.b", time: "2026-01-02T03:04:05.000Z", data: {} }],
		["missing id", { specversion: "1.0", source: "/s", type: "a.b", time: "2026-01-02T03:04:05.000Z", data: {} }],
		["bad type", { specversion: "1.0", id: "1", source: "/s", type: "A B", time: "2026-01-02T03:04:05.000Z", data: {} }],
	])("rejects %s", (_, value) => {
		expect(() => parseCloudEvent(value)).toThrow(MalformedEventError);
	});
});
