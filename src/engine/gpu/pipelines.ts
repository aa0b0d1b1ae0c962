// Compute pipelines and bind groups, created once and reused. Pipelines are keyed by shader name,
// entry point and override constants; bind groups by pipeline and the exact buffer ranges bound.
// It does not record commands (see batch.ts).

export interface ShaderSource {
  /** The file's base name in shaders/, e.g. "matmul". */
  name: string;
  code: string;
}

export type Constants = Record<string, number | boolean>;

export interface PipelineStats {
  modules: number;
  pipelines: number;
  pipelineHits: number;
  bindGroups: number;
  bindGroupHits: number;
}

export class PipelineCache {
  private readonly device: GPUDevice;
  private readonly modules = new Map<string, GPUShaderModule>();
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly bindGroups = new WeakMap<GPUComputePipeline, Map<string, GPUBindGroup>>();
  private pipelineHits = 0;
  private bindGroupCount = 0;
  private bindGroupHits = 0;

  constructor(device: GPUDevice) {
    this.device = device;
  }

  get(shader: ShaderSource, entryPoint = 'main', constants: Constants = {}): GPUComputePipeline {
    const names = Object.keys(constants).sort();
    const key = `${shader.name}|${entryPoint}|${names.map((n) => `${n}=${Number(constants[n])}`).join(',')}`;
    const hit = this.pipelines.get(key);
    if (hit) {
      this.pipelineHits++;
      return hit;
    }
    const constantValues: Record<string, number> = {};
    for (const n of names) constantValues[n] = Number(constants[n]);
    const pipeline = this.device.createComputePipeline({
      label: key,
      layout: 'auto',
      compute: { module: this.module(shader), entryPoint, constants: constantValues },
    });
    this.pipelines.set(key, pipeline);
    return pipeline;
  }

  /** The bind group for group 0 of `pipeline` over `entries`, built once per distinct binding set. */
  bindGroup(pipeline: GPUComputePipeline, entries: GPUBufferBinding[], ids: (b: GPUBuffer) => number): GPUBindGroup {
    let perPipeline = this.bindGroups.get(pipeline);
    if (!perPipeline) this.bindGroups.set(pipeline, (perPipeline = new Map()));
    const key = entries.map((e) => `${ids(e.buffer)}@${e.offset ?? 0}+${e.size ?? -1}`).join(',');
    const hit = perPipeline.get(key);
    if (hit) {
      this.bindGroupHits++;
      return hit;
    }
    const group = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: entries.map((resource, binding) => ({ binding, resource })),
    });
    // A bind group keeps its buffers alive; bound the cache so destroyed transients do not pile up.
    if (perPipeline.size >= 256) perPipeline.clear();
    perPipeline.set(key, group);
    this.bindGroupCount++;
    return group;
  }

  stats(): PipelineStats {
    return {
      modules: this.modules.size,
      pipelines: this.pipelines.size,
      pipelineHits: this.pipelineHits,
      bindGroups: this.bindGroupCount,
      bindGroupHits: this.bindGroupHits,
    };
  }

  private module(shader: ShaderSource): GPUShaderModule {
    let m = this.modules.get(shader.name);
    if (!m) {
      m = this.device.createShaderModule({ label: shader.name, code: shader.code });
      this.modules.set(shader.name, m);
    }
    return m;
  }
}
