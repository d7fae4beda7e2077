using Pipeline.Infrastructure.Storage;

namespace Pipeline.Tests.Support;

/// <summary>
/// The test harness's view of an area it configured as a folder: the tests plant, corrupt and inspect files on disk
/// through the paths only a folder has. Used on a remote area it says so, rather than touching anything.
/// </summary>
public static class LocalAreaAccess
{
    extension(StorageArea area)
    {
        public LocalArea Folder => area as LocalArea
            ?? throw new InvalidOperationException($"Area '{area.Name}' is at {area.Location.Scheme}://, not a folder the test can reach by path.");

        public string RootPath => area.Folder.RootPath;

        public string PathOf(string name) => area.Folder.PathOf(name);

        public bool Exists(string name) => area.Folder.Exists(name);

        public Stream OpenRead(string name) => area.Folder.OpenRead(name);

        public Stream OpenReadOnce(string name) => area.Folder.OpenReadOnce(name);

        public void LetGoOfCachedPages(string name) => area.Folder.LetGoOfCachedPages(name);

        public void DeleteDirectory(string name) => area.Folder.DeleteDirectory(name);
    }
}
