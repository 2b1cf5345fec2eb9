import ArgumentParser
struct StatusCommand: AsyncParsableCommand { static let configuration = CommandConfiguration(commandName: "status") }
struct NodesCommand: AsyncParsableCommand { static let configuration = CommandConfiguration(commandName: "nodes") }
struct EventsCommand: AsyncParsableCommand { static let configuration = CommandConfiguration(commandName: "events") }
