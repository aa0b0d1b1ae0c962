// The first imported examples as the model sees them, token by token: tokens that count toward
// the loss are highlighted and underlined (not by colour alone), special tokens are outlined.
import type { PreviewExample } from '../worker/engine-api.ts';
import { formatInt } from './format.ts';

export function DatasetPreview({ examples }: { examples: PreviewExample[] }) {
  return (
    <section className="card" aria-labelledby="preview-title" data-testid="preview">
      <h2 id="preview-title">Preview</h2>
      <p className="legend" aria-label="Legend">
        <mark className="tok counted">counted</mark> counts toward the loss (highlighted and underlined) · <span className="tok">context</span> is
        read but not learned · <span className="tok special">&lt;|special|&gt;</span> special tokens · <span className="tok">↵</span> a line break
      </p>
      {examples.map((ex) => (
        <article key={ex.index} className="example" aria-label={`Example ${ex.index + 1}`}>
          <h3>
            Example {ex.index + 1}{' '}
            <span className="muted small">
              {formatInt(ex.tokens)} tokens, {formatInt(ex.countedTokens)} counted{ex.clipped ? '; the preview shows the first tokens only' : ''}
            </span>
          </h3>
          <p className="tokens">
            {ex.pieces.map((p, i) => {
              const text = p.text.replace(/\n/g, '↵\n');
              const title = `token${p.ids.length > 1 ? 's' : ''} ${p.ids.join(', ')}: ${p.counted ? 'counted toward the loss' : 'not counted'}`;
              const cls = `tok${p.special ? ' special' : ''}${p.counted ? ' counted' : ''}`;
              return p.counted ? (
                <mark key={i} className={cls} title={title} data-counted="true">
                  {text}
                </mark>
              ) : (
                <span key={i} className={cls} title={title} data-counted="false">
                  {text}
                </span>
              );
            })}
          </p>
        </article>
      ))}
    </section>
  );
}
