// A drop target for files with a file input beside it, so that the same choice is open to mouse,
// keyboard and drag and drop. It hands the files to `onFiles` and shows nothing else.
import { type DragEvent, type ReactNode, useId, useState } from 'react';
import { filesFromDrop } from './drop.ts';

interface Props {
  /** The label of the file input (what a screen reader announces). */
  inputLabel: string;
  /** What to drop, in words. */
  prompt: ReactNode;
  onFiles: (files: File[]) => void;
  multiple?: boolean;
  accept?: string;
  /** Also offer a folder picker (a model folder). */
  folderLabel?: string;
  disabled?: boolean;
  testId?: string;
}

export function DropZone({ inputLabel, prompt, onFiles, multiple, accept, folderLabel, disabled, testId }: Props) {
  const [over, setOver] = useState(false);
  const id = useId();
  const stop = (e: DragEvent) => {
    e.preventDefault();
    e.stopPropagation();
  };
  const onDrop = async (e: DragEvent) => {
    stop(e);
    setOver(false);
    if (disabled) return;
    const files = await filesFromDrop(e.dataTransfer);
    if (files.length > 0) onFiles(multiple ? files : files.slice(0, 1));
  };
  const picked = (list: FileList | null, folder = false) => {
    // From a folder, only the files directly inside it (as with a dropped folder).
    const files = Array.from(list ?? []).filter((f) => !folder || f.webkitRelativePath.split('/').length === 2);
    if (files.length > 0) onFiles(files);
  };
  return (
    <div
      className={`dropzone${over ? ' over' : ''}${disabled ? ' disabled' : ''}`}
      data-testid={testId}
      onDragEnter={(e) => {
        stop(e);
        setOver(true);
      }}
      onDragOver={(e) => {
        stop(e);
        e.dataTransfer.dropEffect = disabled ? 'none' : 'copy';
      }}
      onDragLeave={(e) => {
        stop(e);
        if (!e.currentTarget.contains(e.relatedTarget as Node | null)) setOver(false);
      }}
      onDrop={(e) => void onDrop(e)}
    >
      <p className="dropzone-prompt">{prompt}</p>
      <div className="dropzone-inputs">
        <label htmlFor={`${id}-files`} className="file-label">
          {inputLabel}
        </label>
        <input
          id={`${id}-files`}
          type="file"
          multiple={multiple}
          accept={accept}
          disabled={disabled}
          onChange={(e) => {
            picked(e.currentTarget.files);
            e.currentTarget.value = '';
          }}
        />
        {folderLabel && (
          <>
            <label htmlFor={`${id}-folder`} className="file-label">
              {folderLabel}
            </label>
            <input
              id={`${id}-folder`}
              type="file"
              disabled={disabled}
              // A folder picker: the files inside come with webkitRelativePath.
              {...{ webkitdirectory: '' }}
              onChange={(e) => {
                picked(e.currentTarget.files, true);
                e.currentTarget.value = '';
              }}
            />
          </>
        )}
      </div>
    </div>
  );
}
