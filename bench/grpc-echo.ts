/**
 * The gRPC baseline: a bare @grpc/grpc-js server answering auth.v1.AuthService/Ping by echoing the
 * message, with no Moleculer, no database. Run as its own process: `node bench/grpc-echo.ts PORT`.
 */
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { serviceDefinition } from "../lib/protos.ts";

const port = Number(process.argv[2]);
const server = new Server();
server.addService(serviceDefinition("auth/v1/auth.proto", "auth.v1.AuthService"), {
	Ping: (call: { request: { message: string } }, callback: (err: null, res: object) => void) => callback(null, { message: call.request.message, nodeId: "echo", serverTimeMs: Date.now() }),
});
server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err) => {
	if (err) throw err;
	process.stdout.write("up\n");
});
