// Drives AWS's Node.js aggregation module (npm aws-kinesis-agg) for
// aggregation's integration test: usage `node kinesis_agg_check.js
// <node_modules dir>`, a JSON request on stdin, a JSON response on stdout.
//
// Request:  {deaggregate: [base64 blob], aggregate: [[record]], split: [record]}
//           record = {pk: string, ehk: string|null, data: base64}
// Response: {deaggregated: [{records, raw, error}], aggregated: [{data, partitionKey, raw}],
//            split: [base64 blob]}
//   records: what deaggregateSync returns (checksums verified), as
//            {pk, ehk, sub, data}; raw: the blob decoded with the module's own
//            protobuf model, ehk null when the record has no
//            explicit_hash_key_index (deaggregateSync cannot tell).
'use strict';
const path = require('path');
const modDir = path.join(process.argv[2], 'aws-kinesis-agg');
const agg = require(modDir);
const common = require(path.join(modDir, 'lib', 'common.js'));

const str = (v) => (v === undefined || v === null ? null : String(v));

function rawDecode(blob) {
  const m = common.AggregatedRecord.decode(blob.subarray(4, blob.length - 16));
  return m.records.map((r) => ({
    pk: m.partition_key_table[Number(String(r.partition_key_index))],
    ehk: Object.prototype.hasOwnProperty.call(r, 'explicit_hash_key_index')
      ? m.explicit_hash_key_table[Number(String(r.explicit_hash_key_index))]
      : null,
    data: Buffer.from(r.data).toString('base64'),
  }));
}

function toUserRecord(r) {
  const u = { partitionKey: r.pk, data: Buffer.from(r.data || '', 'base64') };
  if (r.ehk !== null && r.ehk !== undefined) u.explicitHashKey = r.ehk;
  return u;
}

const req = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const resp = { deaggregated: [], aggregated: [], split: [] };

for (const b64 of req.deaggregate || []) {
  const out = { records: null, raw: null, error: null };
  agg.deaggregateSync({ partitionKey: 'outer', sequenceNumber: '1', data: b64 }, true, (err, recs) => {
    if (err) {
      out.error = String(err);
      return;
    }
    out.records = recs.map((r) => ({
      pk: str(r.partitionKey),
      ehk: str(r.explicitPartitionKey),
      sub: r.subSequenceNumber === undefined ? null : r.subSequenceNumber,
      data: r.data,
    }));
  });
  if (!out.error) {
    try {
      const blob = Buffer.from(b64, 'base64');
      if (blob.subarray(0, 4).equals(common.magic)) out.raw = rawDecode(blob);
    } catch (e) {
      out.error = 'raw decode: ' + String(e);
    }
  }
  resp.deaggregated.push(out);
}

for (const group of req.aggregate || []) {
  const ra = new agg.RecordAggregator();
  for (const r of group) ra.addUserRecord(toUserRecord(r));
  const enc = ra.build();
  resp.aggregated.push({
    data: enc.data.toString('base64'),
    partitionKey: enc.partitionKey,
    raw: rawDecode(enc.data),
  });
}

function finish() {
  process.stdout.write(JSON.stringify(resp));
}

if (req.split && req.split.length > 0) {
  agg.aggregate(
    req.split.map(toUserRecord),
    (encoded, done) => {
      resp.split.push(encoded.data.toString('base64'));
      done();
    },
    finish,
    (err) => {
      process.stderr.write('aggregate: ' + err + '\n');
      process.exit(1);
    }
  );
} else {
  finish();
}
