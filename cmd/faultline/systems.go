package main

// The reference system is the default system under test: importing its adapter registers
// its services and proxied links with scenarios, so that validate, run and suite check a
// topology-less scenario's targets and link faults against them.
import _ "github.com/faultline-dev/faultline/reference"
