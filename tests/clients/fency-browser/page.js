// The browser side of fency_browser.test.mjs: the real @fencyai/js 0.1.208, used the way
// @fencyai/react drives it. One StreamCacheManager creates (and reuses) the stream with a
// createStream client token; one StreamEventManager opens GET /sse/streams/{id} (in a Web Worker
// when the browser has one, as Chromium does); every task gets a fresh createAgentTask token and
// is posted with createAgentTask; progress is folded with the SDK's own taskReducer until the
// task's terminal event.
//
// The test's backend step (node, with the secret key) hands out client tokens through
// window.fencyClientToken(sessionBody), which the test exposes before the page loads.
import {
    loadFency,
    createAgentTask,
    StreamCacheManager,
    StreamEventManager,
    toStreamData,
    mapCreateAgentTaskParams,
    taskReducer,
    initialTaskStoreState,
    isTerminalAgentTaskEventData,
    getTerminalCreateAgentTaskResponse,
    agentTaskErrorFromEventData,
} from '@fencyai/js';

const TASK_TYPES = {
    StreamingChatCompletion: 'STREAMING_CHAT_COMPLETION',
    StructuredChatCompletion: 'STRUCTURED_CHAT_COMPLETION',
    MemoryChat: 'MEMORY_CHAT',
    MemorySearch: 'MEMORY_SEARCH',
    ExploreMemories: 'EXPLORE_MEMORIES',
};

let fency = null;
let cache = null;
let events = null;
let store = initialTaskStoreState;
let taskSeq = 0;
// Every message seen on the stream, by agent task id: raw (decoded JSON as sent) and parsed (what
// the SDK's toStreamData made of it; null when the SDK rejected it). Messages can arrive before
// createAgentTask() has answered with the task's id, so they are kept from the start.
const seen = new Map();
const streamMessages = []; // every decoded message, for STREAM_* events and debugging
const streamErrors = [];
const waiters = new Map(); // agentTaskId -> () => void, called on every new message of the task

function record(decoded, streamId) {
    let raw = null;
    try {
        raw = JSON.parse(decoded);
    } catch {
        raw = { unparsable: decoded };
    }
    streamMessages.push({ streamId, raw });
    const parsed = toStreamData(decoded);
    if (raw && raw.type === 'AGENT_TASK_PROGRESS_ITEM_UPDATED' && typeof raw.agentTaskId === 'string') {
        if (!seen.has(raw.agentTaskId)) seen.set(raw.agentTaskId, []);
        seen.get(raw.agentTaskId).push({ raw, parsed });
        waiters.get(raw.agentTaskId)?.();
    }
}

// Set up the SDK objects once per page. Resolves with what the page knows about its environment.
window.fencySetup = async ({ publishableKey, baseUrl }) => {
    fency = await loadFency({ publishableKey, baseUrl });
    cache = new StreamCacheManager(fency, async () => ({
        clientToken: await window.fencyClientToken({ createStream: {} }),
    }));
    events = new StreamEventManager(fency);
    cache.onChange((streams) => events.updateStreams(streams));
    events.subscribe('engram-test', {
        onMessage: (data, streamId) => record(data, streamId),
        onError: (streamId, message) => {
            streamErrors.push({ streamId, message });
            for (const w of waiters.values()) w();
        },
    });
    document.getElementById('status').textContent = 'ready';
    return { publishableKey: fency.publishableKey, baseUrl: fency.baseUrl, worker: events.workerSupported };
};

// Run one task (CreateAgentTaskParams, e.g. {type: 'StreamingChatCompletion', messages, model})
// with an optional createAgentTask session (metadata, guardRails). Resolves with the stream, the
// task id, every message of the task (raw and as the SDK parsed it), the SDK's progress items
// and its terminal response; or {apiError} when createAgentTask() reported one.
window.fencyRun = async (params, session = {}, timeoutMs = 30000) => {
    const stream = await cache.getOrCreateStream();
    const taskKey = `task-${++taskSeq}`;
    store = taskReducer(store, {
        type: 'TASK_PENDING',
        task: { taskKey, streamId: stream.id, params, progressItems: [], loading: true, error: null, confirmedData: null },
    });
    const clientToken = await window.fencyClientToken({
        createAgentTask: { taskType: TASK_TYPES[params.type], ...session },
    });
    const created = await createAgentTask({
        pk: fency.publishableKey,
        baseUrl: fency.baseUrl,
        clientToken,
        streamToken: stream.token,
        request: mapCreateAgentTaskParams(params),
    });
    if (created.type !== 'success') {
        store = taskReducer(store, { type: 'TASK_API_ERROR', taskKey, error: created.error });
        return { stream, apiError: created.error };
    }
    const taskId = created.agentTask.id;
    store = taskReducer(store, { type: 'TASK_CONFIRMED', taskKey, taskId, createdAt: created.agentTask.createdAt });

    // Fold the task's messages into the store, in order, until the terminal one.
    let folded = 0;
    let terminal = null;
    const fold = () => {
        const list = seen.get(taskId) || [];
        for (; folded < list.length && !terminal; folded++) {
            const item = list[folded].parsed;
            if (!item || item.type !== 'AGENT_TASK_PROGRESS_ITEM_UPDATED') continue;
            if (isTerminalAgentTaskEventData(item.data)) {
                const error = agentTaskErrorFromEventData(item.data);
                store = error
                    ? taskReducer(store, { type: 'TASK_ERROR', agentTaskId: taskId, error, item })
                    : taskReducer(store, { type: 'TASK_COMPLETED', agentTaskId: taskId, data: item.data, item });
                terminal = getTerminalCreateAgentTaskResponse(stream.id, taskId, item.data);
            } else {
                store = taskReducer(store, { type: 'PROGRESS_ITEM', item });
            }
        }
        return terminal !== null || streamErrors.some((e) => e.streamId === stream.id);
    };
    await new Promise((resolve) => {
        const timer = setTimeout(() => { waiters.delete(taskId); resolve(); }, timeoutMs);
        const check = () => {
            if (fold()) {
                clearTimeout(timer);
                waiters.delete(taskId);
                resolve();
            }
        };
        waiters.set(taskId, check);
        check();
    });
    // Give a message sent after the terminal one (there must be none) a moment to show.
    await new Promise((r) => setTimeout(r, 300));
    const task = store.tasks.find((t) => t.taskKey === taskKey);
    return {
        stream,
        agentTask: created.agentTask,
        terminal,
        timedOut: terminal === null,
        streamErrors: streamErrors.filter((e) => e.streamId === stream.id),
        messages: (seen.get(taskId) || []).map((m) => ({ raw: m.raw, parsed: m.parsed })),
        progressItems: task.progressItems.map((p) => ({ progressItemId: p.progressItemId, data: p.data })),
        loading: task.loading,
        taskError: task.error,
    };
};

window.fencyStreamMessages = () => streamMessages;
window.fencyActiveStreams = () => cache.getActiveStreams().map((s) => s.stream.id);
