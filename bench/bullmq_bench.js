// The BullMQ side of bench/queue_bench.py:
//   node bullmq_bench.js <port> <jobs> <memJobs> <concurrencies json> <payload json>
// With memJobs > 0 it measures enqueue and memory; then each concurrency's processing, with
// the CPU per job of this process and of Redis (INFO cpu) while it ran.
const { Queue, Worker } = require('bullmq');
const port = Number(process.argv[2]); const n = Number(process.argv[3]);
const memJobs = Number(process.argv[4]); const concs = JSON.parse(process.argv[5]);
const payload = JSON.parse(process.argv[6]);
const connection = { host: '127.0.0.1', port };
const IORedis = require('ioredis');
const opts = { removeOnComplete: { age: 86400, count: 1000 }, removeOnFail: { age: 604800, count: 5000 } };
async function usedMemory(r) { const info = await r.info('memory'); return Number(/used_memory:(\d+)/.exec(info)[1]); }
async function redisCpu(r) {
  const info = await r.info('cpu');
  return Number(/used_cpu_user:([\d.]+)/.exec(info)[1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)[1]);
}
async function bulk(q, count) {
  for (let i = 0; i < count; i += 1000) {
    const jobs = [];
    for (let j = i; j < Math.min(i + 1000, count); j++) jobs.push({ name: 'p', data: payload, opts: { ...opts, jobId: 'photo-' + j } });
    await q.addBulk(jobs);
  }
}
(async () => {
  const r = new IORedis(connection); const out = {};
  let q; let t;
  if (memJobs > 0) {
    await r.flushall();
    q = new Queue('bench-enqueue', { connection });
    t = process.hrtime.bigint(); await bulk(q, n);
    out.enqueue = n / (Number(process.hrtime.bigint() - t) / 1e9); await q.close();
    await r.flushall(); const before = await usedMemory(r);
    q = new Queue('bench-mem', { connection }); await bulk(q, memJobs);
    out.memory = (await usedMemory(r)) - before; await q.close();
  }
  for (const c of concs) {
    await r.flushall();
    const name = 'bench-c' + c; q = new Queue(name, { connection }); await bulk(q, n);
    let done = 0; let resolve; const finished = new Promise(res => { resolve = res; });
    const cpu0 = process.cpuUsage(); const rcpu0 = await redisCpu(r);
    t = process.hrtime.bigint();
    const w = new Worker(name, async () => {}, { connection, concurrency: c });
    w.on('completed', () => { if (++done === n) resolve(); });
    await finished;
    out['c' + c] = n / (Number(process.hrtime.bigint() - t) / 1e9);
    const cpu = process.cpuUsage(cpu0);
    out['c' + c + 'cpu'] = (cpu.user + cpu.system) / n;
    out['c' + c + 'rcpu'] = (await redisCpu(r) - rcpu0) * 1e6 / n;
    await w.close(); await q.close();
  }
  await r.flushall(); await r.quit();
  console.log(JSON.stringify(out));
})().catch(e => { console.error(e); process.exit(1); });
