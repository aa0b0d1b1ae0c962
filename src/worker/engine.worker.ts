// The studio's engine worker: an EngineApi on the browser's WebGPU, exposed through comlink.
import { expose } from 'comlink';
import { openBrowserGpu } from '../engine/gpu/browser.ts';
import { EngineApi } from './engine-api.ts';

expose(new EngineApi(() => openBrowserGpu()));
