// Files from a drop: the dropped files, or the top-level files of a dropped folder (subfolders such
// as `original/` hold other formats and are left out). Browser APIs only; no engine code.

/** The files of a DataTransfer; a dropped folder contributes the files directly inside it. */
export async function filesFromDrop(dt: DataTransfer): Promise<File[]> {
  const entries: FileSystemEntry[] = [];
  for (const item of Array.from(dt.items ?? [])) {
    const entry = item.kind === 'file' && typeof item.webkitGetAsEntry === 'function' ? item.webkitGetAsEntry() : null;
    if (entry) entries.push(entry);
  }
  const folders = entries.filter((e) => e.isDirectory) as FileSystemDirectoryEntry[];
  if (folders.length === 0) return Array.from(dt.files ?? []);
  const out: File[] = [];
  for (const e of entries) {
    if (e.isFile) out.push(await fileOf(e as FileSystemFileEntry));
    else for (const child of await readFolder(e as FileSystemDirectoryEntry)) if (child.isFile) out.push(await fileOf(child as FileSystemFileEntry));
  }
  return out;
}

function fileOf(entry: FileSystemFileEntry): Promise<File> {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

async function readFolder(dir: FileSystemDirectoryEntry): Promise<FileSystemEntry[]> {
  const reader = dir.createReader();
  const all: FileSystemEntry[] = [];
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) return all;
    all.push(...batch);
  }
}
