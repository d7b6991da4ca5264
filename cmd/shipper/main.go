// Command shipper carries SpectraStrike events and findings to VectorVue.
package main

func main() {}
