// `whetstone share --model DIR --out DIR [...]`: writes a copy of a model folder with weight sharing:
// blocks shared across depth (groups of consecutive layers, or an explicit layer → source list,
// stored once with config.json `layer_weight_source`) and/or k-means weight clustering to a
// k-entry codebook per tensor (stored as <name>.codebook + <name>.indices). The folder loads back
// in Whetstone (info, eval, generate); see docs/compression.md. The last line is a JSON summary.

import { parseArgs } from 'node:util';
import { groupedLayerSource, shareModel } from '../engine/compress/share.ts';
import { InvalidArgumentError } from '../engine/errors.ts';
import { checkOutDir, choiceArg, intList, writeModelFolder } from './compress-args.ts';
import { intArg, openModelArg } from './model-args.ts';

export const SHARE_USAGE = `share --model DIR --out DIR [--share-layers N | --layer-source 0,0,2,2] [--init mean|first]
        [--cluster 16|256 [--cluster-targets projections|all-matrices]] [--seed 0]`;

export async function shareCommand(args: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      out: { type: 'string' },
      'share-layers': { type: 'string' },
      'layer-source': { type: 'string' },
      init: { type: 'string' },
      cluster: { type: 'string' },
      'cluster-targets': { type: 'string' },
      seed: { type: 'string' },
    },
    strict: true,
  });
  if (v['share-layers'] !== undefined && v['layer-source'] !== undefined) throw new InvalidArgumentError('Give --share-layers or --layer-source, not both.');
  const out = await checkOutDir(v.out, [v.model]);
  const folder = await openModelArg(v.model);
  const L = folder.config.numHiddenLayers;
  const layerSource = v['share-layers'] !== undefined ? groupedLayerSource(L, intArg('share-layers', v['share-layers'], 1, 2, L)) : intList('layer-source', v['layer-source']);
  const cluster =
    v.cluster === undefined
      ? undefined
      : {
          k: intArg('cluster', v.cluster, 16, 2, 256),
          seed: intArg('seed', v.seed, 0, 0),
          targets: choiceArg('cluster-targets', v['cluster-targets'], ['projections', 'all-matrices'] as const, 'projections'),
        };
  if (!layerSource && !cluster) throw new InvalidArgumentError('Nothing to share: give --share-layers N, --layer-source LIST and/or --cluster K.');
  const { files, report } = await shareModel(folder, { layerSource, init: choiceArg('init', v.init, ['mean', 'first'] as const, 'mean'), cluster });
  const bytes = await writeModelFolder(out, files);
  process.stdout.write(`${JSON.stringify({ out, bytes, layerSource: report.layerSource, clustered: report.clustered.length, parametersStored: report.parametersStored })}\n`);
  return 0;
}
