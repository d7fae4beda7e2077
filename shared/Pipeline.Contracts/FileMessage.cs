namespace Pipeline.Contracts;

/// <summary>Every per-file message names the file's saga and where the file belongs.</summary>
public interface IFileMessage
{
    Guid FileId { get; }
    int Run { get; }
    string Stream { get; }
    string Campaign { get; }
}
