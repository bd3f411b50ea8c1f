// Usage: node price.js <gateway host:port> <repo proto dir> <googleapis proto dir>
// Calls PricingService.<PRICE_METHOD> (default Price) with the JSON request in PRICE_REQUEST,
// and the gateway token in AUTHORIZATION ("Bearer <token>") as call metadata.
// Prints the response as JSON on stdout; exits 1 with the gRPC status on error.
const grpc = require("@grpc/grpc-js");
const loader = require("@grpc/proto-loader");

const [target, protoDir, googleDir] = process.argv.slice(2);
const def = loader.loadSync("tradecore/pricing/v1/pricing.proto", {
  includeDirs: [protoDir, googleDir],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
});
const pkg = grpc.loadPackageDefinition(def);
const client = new pkg.tradecore.pricing.v1.PricingService(target, grpc.credentials.createInsecure());
const request = JSON.parse(process.env.PRICE_REQUEST);
const method = process.env.PRICE_METHOD || "Price";
const metadata = new grpc.Metadata();
if (process.env.AUTHORIZATION) metadata.add("authorization", process.env.AUTHORIZATION);
client[method](request, metadata, { deadline: Date.now() + 10000 }, (err, res) => {
  if (err) {
    console.log(JSON.stringify({ code: err.code, details: err.details }));
    process.exit(1);
  }
  console.log(JSON.stringify(res));
});
